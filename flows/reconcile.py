"""The reconcile flow: ask every agency what it holds, requeue the difference, deliver it.

One ``reconcile-{agency}`` task per agency, run concurrently (an agency that is slow to list
its holdings holds back no other), then the usual per-agency delivery, then a checkpoint.
The comparison itself is ``directives.reconcile``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import flow, task
from prefect.futures import wait

from interdict.directives import reconcile as reconciling
from interdict.errors import DeliveryError
from interdict.flows.checkpoint import Signed, sign_head
from interdict.flows.dispatch import Dispatched, deliver_all
from interdict.flows.runtime import installation
from interdict.storage import transaction, utcnow


@dataclass
class ReconcileReport:
    agencies: dict[str, reconciling.Drift] = field(default_factory=dict)
    dispatched: Dispatched = field(default_factory=Dispatched)
    checkpoint: Signed | None = None

    @property
    def drift(self) -> int:
        return sum(d.drifted for d in self.agencies.values())

    def to_json(self) -> dict[str, Any]:
        delivered = {a: vars(d) for a, d in self.dispatched.delivered.items()}
        return {"drift": self.drift,
                "agencies": {a: d.to_json() for a, d in self.agencies.items()},
                "delivered": delivered,
                "checkpoint": self.checkpoint.to_json() if self.checkpoint else None}


def reconcile_once(home: str, agency: str) -> reconciling.Drift:
    """Compare one agency's holdings with the outbox and requeue what closes the gap."""
    inst = installation(home)
    asked_at = utcnow()
    try:
        held = inst.adapter(agency).holdings()
    except DeliveryError as exc:
        with transaction(inst.db) as session:
            return reconciling.unreachable(session, agency, exc.message, exc.code)
    with transaction(inst.db) as session:
        return reconciling.compare(session, agency, held, asked_at, inst.engine_signer,
                                   utcnow())


@task(name="reconcile", task_run_name="reconcile-{agency}")
def reconcile_agency(home: str, agency: str) -> reconciling.Drift:
    return reconcile_once(home, agency)


@flow(name="reconcile")
def reconcile(home: str) -> ReconcileReport:
    """Find drift at every agency, redeliver the difference, sign a checkpoint."""
    report = ReconcileReport()
    futures = {a: reconcile_agency.submit(home, a) for a in installation(home).agency_ids()}
    wait(list(futures.values()))
    for agency, future in futures.items():
        report.agencies[agency] = future.result()
    deliver_all(home, report.dispatched)
    report.checkpoint = sign_head(home)
    return report
