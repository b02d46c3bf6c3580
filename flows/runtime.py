"""How interdict runs Prefect: settings that matter here, and the per-process installation.

Imported before Prefect by ``interdict.flows`` so the environment defaults below apply.
Every default yields to a value the operator set (e.g. ``PREFECT_API_URL`` for a real server).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
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
    return Installation.open(Home(Path(home)))
