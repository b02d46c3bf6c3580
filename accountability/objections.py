"""The objection register: objections to entries, so that they can be counted.

A person objects to the issuing authority through the entry's ``redress`` route; interdict
never receives the objection itself. An operator (or the issuer) records here that one was
received and, later, how it was decided, so public statistics can say how many objections
there were, how they ended and how long deciding them took. The register holds dates and an
outcome only: no name, no text about the person, no case reference (which could name them).

Deadline: an undecided objection is *overdue* once more than ``review_days`` (default 15,
the Supreme People's Court rule for objections to the judgment-debtor list; FAR 9.406-3
gives a debarred contractor 30 days) have passed since it was received.

Each change appends an audit event in the same transaction: ``objection.received`` and
``objection.decided`` (issuer, entry id, objection id, outcome, days to decision).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability.timing import iso
from interdict.auditlog import log
from interdict.errors import UsageError
from interdict.storage.models import EntryState, Objection

RECEIVED = "objection.received"
DECIDED = "objection.decided"
OUTCOMES = ("upheld", "partly_upheld", "rejected", "withdrawn")
DEFAULT_REVIEW_DAYS = 15


@dataclass(frozen=True)
class Deadline:
    review_days: int = DEFAULT_REVIEW_DAYS

    def overdue(self, objection: Objection, now: datetime) -> bool:
        return (objection.decided_at is None
                and now - objection.received_at > timedelta(days=self.review_days))


def days_between(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() / 86400, 1)


def parse_entry(text: str) -> tuple[str, str]:
    """``court-7/case-1`` → (``court-7``, ``court-7/case-1``): entry ids name their issuer.

    Raises:
        UsageError: ``objection.entry`` when there is no issuer part.
    """
    issuer, sep, rest = text.strip().partition("/")
    if not sep or not issuer or not rest:
        raise UsageError(f"{text!r} is not an entry id: write ISSUER/RECORD, e.g. "
                         "court-7/case-1", code="objection.entry")
    return issuer, text.strip()


def receive(session: Session, issuer: str, entry_id: str, received_at: datetime,
            now: datetime, actor: str) -> Objection:
    """Record that an objection to the entry was received.

    Raises:
        UsageError: ``objection.unknown_entry`` when the entry was never accepted here,
            ``objection.future`` when ``received_at`` is after ``now``.
    """
    if session.get(EntryState, (issuer, entry_id)) is None:
        raise UsageError(f"no entry {entry_id!r} of issuer {issuer!r} was ever accepted: "
                         "check the id (interdict subject report shows a person's entries)",
                         code="objection.unknown_entry")
    if received_at > now:
        raise UsageError(f"received at {iso(received_at)} is in the future",
                         code="objection.future")
    row = Objection(issuer=issuer, entry_id=entry_id, received_at=received_at,
                    recorded_by=actor)
    session.add(row)
    session.flush()
    log.append(session, [log.event(RECEIVED, actor=actor, issuer=issuer, entry_id=entry_id,
                                   objection=row.id, received_at=iso(received_at))])
    return row


def decide(session: Session, objection_id: int, outcome: str, decided_at: datetime,
           now: datetime, actor: str) -> Objection:
    """Record how the objection was decided, once.

    Raises:
        UsageError: ``objection.outcome`` for an outcome not in OUTCOMES,
            ``objection.unknown`` for no such objection, ``objection.decided`` when it was
            decided already, ``objection.before_receipt`` when ``decided_at`` precedes its
            receipt, ``objection.future`` when ``decided_at`` is after ``now``.
    """
    if outcome not in OUTCOMES:
        raise UsageError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}",
                         code="objection.outcome")
    row = session.execute(sa.select(Objection).where(Objection.id == objection_id)
                          .with_for_update()).scalar_one_or_none()
    if row is None:
        raise UsageError(f"no objection {objection_id} is recorded (interdict objection "
                         "list)", code="objection.unknown")
    if row.decided_at is not None:
        raise UsageError(f"objection {objection_id} was decided already ({row.outcome}, "
                         f"{iso(row.decided_at)}); a decision is recorded once",
                         code="objection.decided")
    if decided_at < row.received_at:
        raise UsageError(f"decided at {iso(decided_at)} is before the objection was received "
                         f"({iso(row.received_at)})", code="objection.before_receipt")
    if decided_at > now:
        raise UsageError(f"decided at {iso(decided_at)} is in the future",
                         code="objection.future")
    row.decided_at, row.outcome = decided_at, outcome
    session.add(row)
    log.append(session, [log.event(DECIDED, actor=actor, outcome=outcome, issuer=row.issuer,
                                   entry_id=row.entry_id, objection=row.id,
                                   days=days_between(row.received_at, decided_at))])
    return row


def listed(session: Session, *, open_only: bool = False,
           entry: tuple[str, str] | None = None) -> list[Objection]:
    """Objections in order of receipt: all, the undecided ones, or one entry's."""
    query = sa.select(Objection).order_by(Objection.received_at, Objection.id)
    if open_only:
        query = query.where(Objection.decided_at.is_(None))  # type: ignore[union-attr]
    if entry is not None:
        query = query.where(Objection.issuer == entry[0], Objection.entry_id == entry[1])
    return list(session.execute(query).scalars())


def to_json(objection: Objection, now: datetime, deadline: Deadline) -> dict[str, Any]:
    return {"id": objection.id, "issuer": objection.issuer, "entry_id": objection.entry_id,
            "received_at": iso(objection.received_at), "decided_at": iso(objection.decided_at),
            "outcome": objection.outcome,
            "days": days_between(objection.received_at, objection.decided_at or now),
            "overdue": deadline.overdue(objection, now)}


def counts(session: Session, now: datetime, deadline: Deadline) -> dict[str, Any]:
    """Counts only, for public statistics."""
    rows = listed(session)
    decided = [o for o in rows if o.decided_at is not None]
    days = [days_between(o.received_at, o.decided_at) for o in decided
            if o.decided_at is not None]
    return {
        "review_days": deadline.review_days,
        "received_by_month": dict(sorted(Counter(o.received_at.strftime("%Y-%m")
                                                 for o in rows).items())),
        "decided_by_outcome": {k: sum(o.outcome == k for o in decided) for k in OUTCOMES},
        "median_days": statistics.median(days) if days else None,
        "max_days": max(days) if days else None,
        "decided_late": sum(d > deadline.review_days for d in days),
        "open": len(rows) - len(decided),
        "overdue": sum(deadline.overdue(o, now) for o in rows),
    }
