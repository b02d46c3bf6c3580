"""The erase flow: erasure after retention, then a checkpoint over the events it appended.

Scheduled by ``interdict serve`` once a day (flows/deploy.py), not run inside every sync:
retention is counted in days, so a daily run erases on time, and the sync, which carries
the lift deadlines, never waits for it. ``interdict erase`` runs the same function.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from interdict.accountability import erasure
from interdict.flows.checkpoint import sign_head
from interdict.flows.runtime import installation


@task(name="erase")
def erase_due(home: str) -> dict[str, Any]:
    return erasure.erase(installation(home)).to_json()


@flow(name="erase")
def erase(home: str) -> dict[str, Any]:
    """Erase what is past retention, then sign a checkpoint."""
    report = erase_due(home)
    report["checkpoint"] = sign_head(home).to_json()
    return report
