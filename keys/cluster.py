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
_log = logging.getLogger(__name__)

_CLIENT: Any = None  # distributed.Client, imported only when a scheduler is named
_EXECUTOR: Executor | None = None
_GUARD = threading.Lock()


def address() -> str | None:
    """The scheduler named by ``INTERDICT_DASK_SCHEDULER``, if any."""
    return os.environ.get(SCHEDULER_ENV, "").strip() or None


def executor() -> Executor | None:
    """The cluster's executor, connecting on first use; None without a scheduler, or if it
    cannot be reached (logged once per address: checks then stay on this machine)."""
    global _CLIENT, _EXECUTOR
    wanted = address()
    if wanted is None:
        return None
    with _GUARD:
        if _EXECUTOR is None and not _unreachable(wanted):
            _CLIENT, _EXECUTOR = _connect(wanted)
        return _EXECUTOR


def _connect(wanted: str) -> tuple[Any, Executor | None]:
    try:
        from distributed import Client
    except ImportError:
        _give_up(wanted, "the distributed package is not installed "
                         "(pip install 'interdict[dask]')")
        return None, None
    try:
        client = Client(wanted, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        _give_up(wanted, f"its scheduler did not answer ({exc})")
        return None, None
    return client, client.get_executor()


#: addresses that failed once: not tried again by this process, so not warned about again
_FAILED: set[str] = set()


def _unreachable(wanted: str) -> bool:
    return wanted in _FAILED


def _give_up(wanted: str, why: str) -> None:
    _FAILED.add(wanted)
    _log.warning("%s=%s: %s; signatures are checked on this machine instead", SCHEDULER_ENV,
                 wanted, why)


def close() -> None:
    """Disconnect from the cluster (it connects again when next needed); the cluster itself
    goes on."""
    global _CLIENT, _EXECUTOR
    with _GUARD:
        client, _CLIENT, _EXECUTOR = _CLIENT, None, None
    if client is not None:
        client.close()
