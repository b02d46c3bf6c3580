"""Signature checks on a Dask cluster, for more cores than one machine has.

With ``INTERDICT_DASK_SCHEDULER`` set to a scheduler's address (``tcp://host:8786``), the
signature checks of ``keys/offload.py`` (a batch of entries at ingest, a batch of receipts in
delivery) go to that cluster through Dask's standard ``Executor`` (``Client.get_executor``)
instead of the local worker process. Its workers need interdict installed, the same version as
the engine: they import ``interdict.keys.offload.verify_all`` by name.

Only checks go there. A check needs public keys and public tokens, and comes back as a hint
the engine does not have to trust (offload.py). Signing needs the engine's private key, which
stays on the engine's machine: directives are still signed by the local worker process.

Dask's workers never talk to Prefect here (these are not Prefect tasks), so the cluster works
with Prefect's ephemeral server as well as with a real one. Needs ``pip install
'interdict[dask]'`` (the ``distributed`` package).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Executor
from typing import Any

SCHEDULER_ENV = "INTERDICT_DASK_SCHEDULER"
#: how long to wait for the scheduler before checking on this machine instead
CONNECT_TIMEOUT_S = 10
#: how long leaving the cluster may take (a dead scheduler does not answer the goodbye)
_CLOSE_TIMEOUT_S = 2
_log = logging.getLogger(__name__)

_GUARD = threading.Lock()
_CONNECTED: tuple[str, Any, Executor] | None = None  # address, distributed.Client, executor
#: addresses that failed: not tried again by this process, so not warned about again
_FAILED: set[str] = set()


def address() -> str | None:
    """The scheduler named by ``INTERDICT_DASK_SCHEDULER``, if any."""
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


def executor() -> Executor | None:
    """The cluster's executor, connecting on first use; None without a scheduler, or once it
    failed (logged once per address: checks then stay on this machine). Never raises."""
    global _CONNECTED
    wanted = address()
    with _GUARD:
        if _CONNECTED is not None and _CONNECTED[0] != wanted:  # the setting changed
            _close_quietly(_CONNECTED[1])
            _CONNECTED = None
        if _CONNECTED is None and wanted is not None and wanted not in _FAILED:
            _CONNECTED = _connect(wanted)
        return None if _CONNECTED is None else _CONNECTED[2]


def _connect(wanted: str) -> tuple[str, Any, Executor] | None:
    try:
        from distributed import Client
    except ImportError:
        _give_up(wanted, "the distributed package is not installed "
                         "(pip install 'interdict[dask]')")
        return None
    try:
        client = Client(wanted, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except Exception as exc:  # no answer, a bad address (ValueError), ...: never fatal
        _give_up(wanted, f"its scheduler could not be reached ({exc or type(exc).__name__})")
        return None
    return wanted, client, client.get_executor()


def failed(exc: BaseException) -> None:
    """Checks on the cluster failed or went unanswered: leave it, and check on this machine
    from then on (the local worker, else in place)."""
    global _CONNECTED
    with _GUARD:
        connected, _CONNECTED = _CONNECTED, None
    if connected is not None:
        _give_up(connected[0], f"signature checks there failed ({exc or type(exc).__name__})")
        _close_quietly(connected[1])


def _give_up(wanted: str, why: str) -> None:
    if wanted not in _FAILED:
        _FAILED.add(wanted)
        _log.warning("%s=%s: %s; signatures are checked on this machine instead",
                     SCHEDULER_ENV, wanted, why)


def close() -> None:
    """Leave the cluster (it is joined again when next needed); the cluster itself goes on."""
    global _CONNECTED
    with _GUARD:
        connected, _CONNECTED = _CONNECTED, None
    if connected is not None:
        _close_quietly(connected[1])


def _close_quietly(client: Any) -> None:
    # Leaving is not worth failing a batch over, nor holding up the exit of the process.
    try:
        client.close(timeout=_CLOSE_TIMEOUT_S)
    except Exception as exc:
        _log.debug("leaving the Dask cluster: %s", exc)
