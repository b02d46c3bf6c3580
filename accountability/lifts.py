"""Lift deadlines, measured: from the cause of each lift to the agency's signed receipt.

Definitions (docs/accountability.md):

- **trigger**: the later of the lift directive's ``effective_from`` (the expiry time, or the
  revoke/amend's own ``effective_from``) and the moment interdict accepted the revision that
  caused it. A lift cannot be owed before the restriction ends, nor before interdict could
  know about it. A lift a measure policy caused (``policy apply`` took the measure from the
  agency) takes effect when the policy was applied: that is its ``effective_from``, so its
  trigger (cause ``policy``).
- **done**: the agency's signed receipt says ``applied`` or ``duplicate``; its own signed
  ``at`` is the end of the interval (not when interdict stored it).
- **latency**: done − trigger, never below zero (a receipt before the trigger is on time).
- **late**: latency above the deadline, or, not done yet, ``now − trigger`` above it: a lift
  still pending, dead-lettered or rejected is late too once the deadline passed.

Directives that were never meant to be sent (``shadow``) are not counted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability import escalation
from interdict.accountability.timing import iso, nearest_rank, parse_iso
from interdict.directives.document import directive_id
from interdict.directives.outbox import payload
from interdict.storage.models import Directive, EntryRevision, Receipt

DEFAULT_DEADLINE = timedelta(hours=1)
DONE = ("applied", "duplicate")
LATE = "lift.late"


@dataclass(frozen=True)
class Lift:
    """One lift directive and what became of it."""

    directive_id: str
    agency: str
    issuer: str
    entry_id: str
    revision: int
    cause: str  # revoke | expiry | amend | policy
    trigger: datetime
    status: str  # the outbox status: pending | delivered | rejected | dead
    receipt_status: str | None
    receipt_at: datetime | None  # the agency's signed ``at``

    @property
    def done(self) -> bool:
        return self.receipt_status in DONE and self.receipt_at is not None

    def latency(self, now: datetime) -> timedelta:
        """Time to done; for a lift not done yet, the time it has been owed so far."""
        end = self.receipt_at if self.done and self.receipt_at else now
        return max(end - self.trigger, timedelta(0))

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"directive_id": self.directive_id, "agency": self.agency,
                "issuer": self.issuer, "entry_id": self.entry_id, "revision": self.revision,
                "cause": self.cause, "trigger": iso(self.trigger), "status": self.status,
                "receipt": self.receipt_status, "receipt_at": iso(self.receipt_at),
                "done": self.done, "seconds": round(self.latency(now).total_seconds(), 3)}


@dataclass
class AgencyLatency:
    lifts: int = 0
    done: int = 0
    seconds: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"lifts": self.lifts, "done": self.done, "open": self.lifts - self.done,
                "p50_s": _rounded(nearest_rank(self.seconds, 0.50)),
                "p95_s": _rounded(nearest_rank(self.seconds, 0.95)),
                "max_s": _rounded(max(self.seconds) if self.seconds else None)}


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


@dataclass
class SloReport:
    now: datetime
    deadline: timedelta
    agencies: dict[str, AgencyLatency]
    late: list[Lift]
    escalated: list[str] = field(default_factory=list)  # late lifts first reported this run

    def to_json(self) -> dict[str, Any]:
        return {"now": iso(self.now), "deadline_s": self.deadline.total_seconds(),
                "agencies": {a: v.to_json() for a, v in sorted(self.agencies.items())},
                "late": [lift.to_json(self.now) for lift in self.late],
                "escalated": self.escalated}


def measure(lifts: Iterable[Lift], now: datetime, deadline: timedelta) -> SloReport:
    """Per agency, the latency of done lifts; and every lift past the deadline. Pure."""
    agencies: dict[str, AgencyLatency] = defaultdict(AgencyLatency)
    late = []
    for lift in lifts:
        row = agencies[lift.agency]
        row.lifts += 1
        if lift.done:
            row.done += 1
            row.seconds.append(lift.latency(now).total_seconds())
        if lift.latency(now) > deadline:
            late.append(lift)
    late.sort(key=lambda lift: (lift.trigger, lift.agency, lift.directive_id))
    return SloReport(now, deadline, dict(agencies), late)


def load(session: Session) -> list[Lift]:
    """Every lift directive ever issued for delivery, with its trigger and receipt."""
    rows = session.execute(
        sa.select(Directive.directive_id, Directive.agency, Directive.issuer,
                  Directive.entry_id, Directive.revision, Directive.status, Directive.jws,
                  EntryRevision.op, EntryRevision.accepted_at,
                  EntryRevision.expires_at, Receipt.status.label("receipt"),
                  Receipt.jws.label("receipt_jws"))
        .join(EntryRevision, sa.and_(EntryRevision.issuer == Directive.issuer,
                                     EntryRevision.entry_id == Directive.entry_id,
                                     EntryRevision.revision == Directive.revision))
        .outerjoin(Receipt, Receipt.directive_id == Directive.directive_id)
        .where(Directive.action == "lift", Directive.status.not_in(("shadow", "withheld")))
        .order_by(Directive.id))  # type: ignore[arg-type]
    return [_lift(r) for r in rows]


def _lift(r: Any) -> Lift:
    effective = parse_iso(payload(r.jws)["effective_from"])
    # An expiry lift takes effect at the revision's own expires_at; an amend's lift at the
    # amend's effective_from, which admission keeps strictly before its expires_at.
    expiry = r.op != "revoke" and effective == r.expires_at
    cause = "expiry" if expiry else ("revoke" if r.op == "revoke" else "amend")
    if r.directive_id != directive_id(r.issuer, r.entry_id, r.revision, r.agency, "lift"):
        cause = "policy"  # only a policy's re-route gives a lift an id of its own
    receipt_at = parse_iso(payload(r.receipt_jws)["at"]) if r.receipt_jws else None
    return Lift(r.directive_id, r.agency, r.issuer, r.entry_id, r.revision, cause,
                max(effective, r.accepted_at), r.status, r.receipt, receipt_at)


def escalate(session: Session, late: Sequence[Lift], now: datetime) -> list[str]:
    """A ``lift.late`` audit event once per late lift (the directive id is the key)."""
    warnings = {lift.directive_id: {
        "directive_id": lift.directive_id, "agency": lift.agency, "issuer": lift.issuer,
        "entry_id": lift.entry_id, "revision": lift.revision, "cause": lift.cause,
        "seconds": int(lift.latency(now).total_seconds()),
        "outcome": "late" if lift.done else "undelivered"} for lift in late}
    return escalation.raise_once(session, LATE, warnings, now)


def report(session: Session, now: datetime, deadline: timedelta = DEFAULT_DEADLINE) -> SloReport:
    """Measure every lift and escalate the late ones, in the caller's transaction."""
    result = measure(load(session), now, deadline)
    result.escalated = escalate(session, result.late, now)
    return result
