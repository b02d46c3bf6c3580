"""The dispatch flow: route accepted revisions into the outbox, and deliver per agency.

One task per batch of revisions, and one delivery task per agency run concurrently, so a slow
or absent agency never holds back another. Delivery starts alongside routing and follows it,
batch by batch (flows/handover.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import sqlalchemy as sa
from prefect import flow, task
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner

from interdict import progress
from interdict.directives import Delivered, Issued, agency_routes, deliver_agency, expire, plan
from interdict.directives.delivery import Clock
from interdict.directives.throttle import DeliveryPolicy
from interdict.flows import handover
from interdict.flows.runtime import installation
from interdict.keys import truststore
from interdict.storage import transaction, utcnow
from interdict.storage.models import EntryRevision

DEFAULT_BATCH = 1000


@dataclass
class Dispatched:
    causes: int = 0
    issued: Counter[str] = field(default_factory=Counter)
    delivered: dict[str, Delivered] = field(default_factory=dict)

    def add_issued(self, batch: Issued) -> None:
        self.causes += batch.causes
        self.issued.update(batch.per_agency)


def plan_once(home: str, batch_size: int = DEFAULT_BATCH) -> Issued:
    inst = installation(home)
    with transaction(inst.db) as session:
        issued = plan(session, inst.engine_signer, agency_routes(session), batch_size, utcnow())
    if issued.causes:
        handover.routed(home)
    return issued


def expire_once(home: str, batch_size: int = DEFAULT_BATCH) -> Issued:
    inst = installation(home)
    with transaction(inst.db) as session:
        return expire(session, inst.engine_signer, agency_routes(session), batch_size, utcnow())


def deliver_once(home: str, agency: str, clock: Clock = utcnow) -> Delivered:
    """Deliver what is due for one agency, under the policy in its manifest ``settings``."""
    inst = installation(home)
    adapter = inst.adapter(agency)
    with transaction(inst.db) as session:
        keys = {k.kid: k.public_key for k in truststore.keys_of(session, "agency", agency)
                if k.status != "revoked"}
    policy = DeliveryPolicy.from_settings(adapter.context.manifest.get("settings", {}))
    return deliver_agency(inst.db, adapter, keys, policy, clock=clock)


@task(name="plan-batch")
def plan_batch(home: str, batch_size: int = DEFAULT_BATCH) -> Issued:
    return plan_once(home, batch_size)


@task(name="expire-batch")
def expire_batch(home: str, batch_size: int = DEFAULT_BATCH) -> Issued:
    return expire_once(home, batch_size)


# The one task that talks to other systems retries: a lock timeout on a busy SQLite or a
# dropped connection fails one delivery pass, and a rerun is safe (claims and directive ids).
@task(name="deliver", task_run_name="deliver-{agency}", retries=2, retry_delay_seconds=5)
def deliver_to(home: str, agency: str, following: int | None = None) -> Delivered:
    """``following``: the routing (flows/handover.py) to deliver alongside, until it ends."""
    if following is not None:
        return handover.follow(following, partial(deliver_once, home, agency))
    return deliver_once(home, agency)


def unrouted(home: str) -> int:
    inst = installation(home)
    with transaction(inst.db) as session:
        return int(session.execute(sa.select(sa.func.count()).select_from(EntryRevision)
                                   .where(EntryRevision.routed == sa.false())).scalar_one())


def route_all(home: str, batch_size: int, report: Dispatched) -> None:
    with progress.phase("route", unrouted(home)) as bar:
        while (batch := plan_batch(home, batch_size)).causes:
            report.add_issued(batch)
            bar.advance(batch.causes)


def expire_all(home: str, batch_size: int, report: Dispatched) -> None:
    while (batch := expire_batch(home, batch_size)).causes:
        report.add_issued(batch)


Deliveries = dict[str, PrefectFuture[Delivered]]


def start_delivering(home: str, *, following: int | None = None) -> Deliveries:
    """One delivery task per agency, started; ``following`` a routing (see deliver_to)."""
    agencies = installation(home).agency_ids()
    return {agency: deliver_to.submit(home, agency, following) for agency in agencies}


def finish_delivering(deliveries: Deliveries, report: Dispatched) -> None:
    wait(list(deliveries.values()))
    for agency, future in deliveries.items():
        report.delivered[agency] = future.result()


def deliver_all(home: str, report: Dispatched) -> None:
    finish_delivering(start_delivering(home), report)


def route_with_deliveries(home: str, batch_size: int, report: Dispatched) -> Deliveries:
    """Route everything, each agency's delivery started first and following; they end once
    routing has (``finish_delivering`` waits for them). If routing fails, what it stored
    is delivered before the failure goes on: the flow's end would cancel a delivery task
    that had not started yet."""
    deliveries: Deliveries = {}
    try:
        with handover.routing(home) as routing:
            deliveries = start_delivering(home, following=routing)
            route_all(home, batch_size, report)
    except Exception:
        wait(list(deliveries.values()))
        raise
    return deliveries


# Threads of this process, as Prefect's default is: delivery follows routing through
# flows/handover.py, which only this process's threads see. (The ignore: Prefect's own
# types expect a runner of plain futures.)
@flow(name="dispatch", task_runner=ThreadPoolTaskRunner[Any]())  # type: ignore[arg-type]
def dispatch(home: str, batch_size: int = DEFAULT_BATCH) -> Dispatched:
    """Route what ingest accepted, delivering the outbox to every agency concurrently from
    the first routed batch on."""
    report = Dispatched()
    finish_delivering(route_with_deliveries(home, batch_size, report), report)
    return report


@flow(name="lift")
def lift(home: str, batch_size: int = DEFAULT_BATCH) -> Dispatched:
    """Lift every entry past its expiry at every agency holding it, and deliver the lifts."""
    report = Dispatched()
    expire_all(home, batch_size, report)
    deliver_all(home, report)
    return report
