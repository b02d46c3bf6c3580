"""Prefect flows: ingest, dispatch, lift, checkpoint and sync (the main job).

Flows narrate; tasks are batch-sized steps that call the plain functions in ``entries``,
``directives`` and ``auditlog``. Import this package before Prefect is first used: it applies
interdict's Prefect defaults (flows/runtime.py).
"""

from interdict.flows.runtime import apply_defaults

apply_defaults()

from interdict.flows.checkpoint import checkpoint  # noqa: E402
from interdict.flows.dispatch import dispatch, lift  # noqa: E402
from interdict.flows.ingest import ingest  # noqa: E402
from interdict.flows.runtime import flow_settings  # noqa: E402
from interdict.flows.sync import SyncReport, sync  # noqa: E402

__all__ = ["SyncReport", "checkpoint", "dispatch", "flow_settings", "ingest", "lift", "sync"]
