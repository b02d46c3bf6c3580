"""The main job: ingest, lift what expired, route and deliver, then sign a checkpoint.

Expiry runs before delivery (not after, as a separate lift flow would) so that the lifts it
causes go out in the same run as everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import flow

from interdict.flows.checkpoint import Signed, sign_head
from interdict.flows.dispatch import (
    DEFAULT_BATCH,
    Dispatched,
    deliver_all,
    expire_all,
    route_all,
)
from interdict.flows.ingest import Ingested, ingest_all


@dataclass
class SyncReport:
    ingested: Ingested
    dispatched: Dispatched
    checkpoint: Signed

    def to_json(self) -> dict[str, Any]:
        agencies = sorted(set(self.dispatched.issued) | set(self.dispatched.delivered))
        directives = {}
        for agency in agencies:
            outcome = self.dispatched.delivered.get(agency)
            directives[agency] = {
                "issued": self.dispatched.issued.get(agency, 0),
                "delivered": outcome.delivered if outcome else 0,
                "rejected": outcome.rejected if outcome else 0,
                "failed": outcome.failed if outcome else 0,
                "dead_lettered": outcome.dead if outcome else 0,
            }
        return {"accepted": self.ingested.accepted, "quarantined": self.ingested.quarantined,
                "read": self.ingested.read, "cursor": self.ingested.position,
                "directives": directives, "checkpoint": self.checkpoint.to_json()}


@flow(name="sync")
def sync(home: str, batch_size: int = DEFAULT_BATCH) -> SyncReport:
    """ingest -> lift expired -> route -> deliver -> checkpoint."""
    ingested = ingest_all(home, batch_size)
    dispatched = Dispatched()
    expire_all(home, batch_size, dispatched)
    route_all(home, batch_size, dispatched)
    deliver_all(home, dispatched)
    return SyncReport(ingested, dispatched, sign_head(home))
