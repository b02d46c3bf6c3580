"""The main job: ingest, lift what expired, route and deliver, then sign a checkpoint.

Expiry runs before delivery (not after, as a separate lift flow would) so that the lifts it
causes go out in the same run as everything else. Delivery starts with routing and follows
it batch by batch (flows/handover.py): the "route" phase ends when routing does, and
"deliver" is what delivery still had to do then.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from interdict.flows.checkpoint import Signed, sign_head
from interdict.flows.dispatch import (
    DEFAULT_BATCH,
    Dispatched,
    expire_all,
    finish_delivering,
    route_with_deliveries,
)
from interdict.flows.ingest import Ingested, ingest_all


@dataclass
class SyncReport:
    ingested: Ingested
    dispatched: Dispatched
    checkpoint: Signed
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase

    def to_json(self) -> dict[str, Any]:
        agencies = sorted(set(self.dispatched.issued) | set(self.dispatched.delivered))
        directives = {}
        for agency in agencies:
            outcome = self.dispatched.delivered.get(agency)
            directives[agency] = {
                "issued": self.dispatched.issued.get(agency, 0),
                "delivered": outcome.delivered if outcome else 0,
                "rejected": outcome.rejected if outcome else 0,
                "flagged": outcome.flagged if outcome else 0,
                "failed": outcome.failed if outcome else 0,
                "dead_lettered": outcome.dead if outcome else 0,
            }
        return {"accepted": self.ingested.accepted, "quarantined": self.ingested.quarantined,
                "read": self.ingested.read, "cursor": self.ingested.position,
                "directives": directives, "checkpoint": self.checkpoint.to_json(),
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


@contextmanager
def timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start


# Threads of this process, as Prefect's default is: delivery follows routing through
# flows/handover.py, which only this process's threads see. (The ignore: Prefect's own
# types expect a runner of plain futures.)
@flow(name="sync", task_runner=ThreadPoolTaskRunner[Any]())  # type: ignore[arg-type]
def sync(home: str, batch_size: int = DEFAULT_BATCH) -> SyncReport:
    """ingest -> lift expired -> route, with delivery alongside -> checkpoint."""
    seconds: dict[str, float] = {}
    dispatched = Dispatched()
    with timed(seconds, "ingest"):
        ingested = ingest_all(home, batch_size)
    with timed(seconds, "expire"):
        expire_all(home, batch_size, dispatched)
    with timed(seconds, "route"):
        deliveries = route_with_deliveries(home, batch_size, dispatched)
    with timed(seconds, "deliver"):
        finish_delivering(deliveries, dispatched)
    with timed(seconds, "checkpoint"):
        signed = sign_head(home)
    return SyncReport(ingested, dispatched, signed, seconds)
