"""How interdict runs Prefect: settings that matter here, and the per-process installation.

Imported before Prefect by ``interdict.flows`` so the environment defaults below apply.
Every default yields to a value the operator set (e.g. ``PREFECT_API_URL`` for a real server).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from pathlib import Path

from interdict.home import Home
from interdict.installation import Installation

_DEFAULTS = {
    # No network on these machines, and nothing to report from an engine like this one.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The ephemeral server's first start (fresh PREFECT_HOME, migrations) takes ~25 s here.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    # Quiet by default: interdict prints its own summary; -v turns Prefect's logs back on.
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # The task-run recorder's defaults of 1 cost ~35 ms per task run (PERFORMANCE.md).
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_UI_ENABLED": "false",
}


def apply_defaults() -> None:
    for name, value in _DEFAULTS.items():
        os.environ.setdefault(name, value)


@contextmanager
def flow_settings() -> Iterator[None]:
    """Flow heartbeats cost ~1 s per flow run on shutdown; interdict's runs are short and
    recorded in its own audit log, so they are off (None cannot be set from the environment)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@lru_cache(maxsize=8)
def installation(home: str) -> Installation:
    """The installation at ``home``, opened once per process; the first also settles the
    garbage collector for batch work (settle_gc)."""
    settle_gc()
    return Installation.open(Home(Path(home)))


#: gen-0 collections every this many container allocations instead of Python's 700: a batch
#: allocates hundreds of thousands of short-lived dicts and lists and frees them by
#: reference counting; collecting every 700 only walks them before they go
GC_GEN0_THRESHOLD = 20_000


@cache  # once per process
def settle_gc() -> None:
    """Once per process: move what imports made (Prefect, SQLAlchemy, pydantic: several
    hundred thousand objects, kept for the process's life) out of the collector's reach, and
    collect the young generation less often.

    Measured at 50,000 entries (docs/performance.md): full collections walked the imported
    objects 35 times, 133 ms each, 6 % of the sync. Frozen objects are never collected; they
    are the modules and what they built, which live as long as the process anyway.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
