"""Review before expiry: which entries in force must be reviewed or will end soon, per issuer.

An entry is *due* at the earlier of its expiry and its review date: the acceptance of the
revision that last started its review clock (its impose, or a later amend with a new
assessment; an amend that keeps the assessment does not restart it) plus the shortest review
interval the policy in force sets for its measures. Listing entries due within a window
warns each issuer once per entry revision (audit event ``review.due``), so running the
report daily, by hand or on a schedule (``flows/review.py``, which ``interdict serve`` runs
daily), warns ahead without repeating itself. Each item also says how many extensions the
entry has had since its latest impose and how many the policy allows: an issuer extends by
publishing an amend with a new assessment (entries/gate.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability import escalation, policy
from interdict.accountability.timing import iso
from interdict.directives.outbox import payload
from interdict.entries import store
from interdict.storage.models import EntryRevision, EntryState

DUE = "review.due"
DEFAULT_WITHIN = timedelta(days=120)  # SIS warns four months ahead of the review date


@dataclass(frozen=True)
class Due:
    issuer: str
    entry_id: str
    revision: int
    kind: str  # expiry | review
    due_at: datetime
    expires_at: datetime
    review_at: datetime
    extensions: int = 0  # since the entry's latest impose
    max_extensions: int | None = None  # the policy's cap for its measures; None: no cap

    @property
    def ref(self) -> str:
        return f"{self.entry_id}#{self.revision}"

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {"entry_id": self.entry_id, "revision": self.revision, "kind": self.kind,
                "due_at": iso(self.due_at), "expires_at": iso(self.expires_at),
                "review_at": iso(self.review_at), "days_left": (self.due_at - now).days,
                "extensions": self.extensions, "max_extensions": self.max_extensions}


def due(session: Session, now: datetime, within: timedelta, issuer: str | None = None
        ) -> list[Due]:
    """Entries in force (of ``issuer``, or all) that are due before ``now + within`` (or
    overdue), soonest first."""
    in_force = policy.active(session)
    caps = policy.admission_policy(session)
    query = (
        sa.select(EntryRevision.issuer, EntryRevision.entry_id, EntryRevision.revision,
                  EntryRevision.accepted_at, EntryRevision.jws, EntryState.expires_at)
        .join(EntryState, sa.and_(EntryState.issuer == EntryRevision.issuer,
                                  EntryState.entry_id == EntryRevision.entry_id,
                                  EntryState.revision == EntryRevision.revision))
        .where(EntryState.status == "active"))
    if issuer is not None:
        query = query.where(EntryState.issuer == issuer)
    clocks = store.review_clock_starts(session, issuer)
    found = []
    for r in session.execute(query):
        measures = payload(r.jws).get("measures", [])
        started = clocks.get((r.issuer, r.entry_id), r.accepted_at)
        review_at = started + timedelta(days=in_force.review_days(
            [m["type"] for m in measures]))
        kind, due_at = (("review", review_at) if review_at < r.expires_at
                        else ("expiry", r.expires_at))
        if due_at <= now + within:
            found.append(Due(r.issuer, r.entry_id, r.revision, kind, due_at, r.expires_at,
                             review_at, max_extensions=caps.extension_cap(measures)))
    facts = store.extension_facts(session, {(d.issuer, d.entry_id) for d in found})
    found = [replace(d, extensions=facts[(d.issuer, d.entry_id)][2])
             if (d.issuer, d.entry_id) in facts else d for d in found]
    return sorted(found, key=lambda d: (d.due_at, d.entry_id))


def warn(session: Session, items: list[Due], now: datetime) -> list[str]:
    """One ``review.due`` event per entry revision, ever."""
    return escalation.raise_once(session, DUE, {d.ref: {
        "issuer": d.issuer, "entry_id": d.entry_id, "revision": d.revision, "kind": d.kind,
        "due_at": iso(d.due_at), "outcome": "warned"} for d in items}, now)


def report(session: Session, now: datetime, within: timedelta = DEFAULT_WITHIN,
           issuer: str | None = None) -> dict[str, Any]:
    """The entries due, per issuer (only ``issuer``'s when given: an issuer's own list), each
    warned once."""
    items = due(session, now, within, issuer)
    warned = set(warn(session, items, now))
    per_issuer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in items:
        per_issuer[d.issuer].append({**d.to_json(now), "warned_now": d.ref in warned})
    return {"now": iso(now), "within_days": within.days, "issuers": dict(per_issuer),
            "warned": len(warned)}
