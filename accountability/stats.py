"""Public statistics: counts only, no personal data, fit to publish.

Nothing here reads a subject: measures are counted from the entries' measure types, issuers
and the directives' agencies; refusals from the quarantine's reason codes; lift latency from
accountability.lifts; agency flags by reason code and by agency from the flagged
directives' receipts (accountability.flags); objections from the objection register
(accountability.objections: received per month, decided by outcome, days to decision).
Counts are broken down by one dimension at a time (type, issuer, agency, month, reason
code), never crossed. Small counts are not
suppressed: an operator who publishes figures for a small list should know a count of 1 can
point at someone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability import flags, lifts, objections
from interdict.accountability.timing import iso
from interdict.directives.outbox import payload
from interdict.storage.models import Directive, EntryRevision, EntryState, QuarantinedEntry


def collect(session: Session, now: datetime,
            deadline: timedelta = lifts.DEFAULT_DEADLINE,
            objection_deadline: objections.Deadline | None = None) -> dict[str, Any]:
    """Every published figure, computed in one read-only pass."""
    slo = lifts.measure(lifts.load(session), now, deadline)
    late_agencies = Counter(lift.agency for lift in slo.late)
    return {
        "generated_at": iso(now),
        "active": _active(session),
        "over_time": _over_time(session),
        "refusals": _refusals(session),
        "lift_latency": {a: v.to_json() for a, v in sorted(slo.agencies.items())},
        "late_lifts": {"deadline_s": deadline.total_seconds(),
                       "by_agency": dict(sorted(late_agencies.items()))},
        "flags": flags.counts(session),
        "objections": objections.counts(session, now,
                                        objection_deadline or objections.Deadline()),
    }


def _active(session: Session) -> dict[str, Any]:
    by_type: Counter[str] = Counter()
    by_issuer: Counter[str] = Counter()
    rows = session.execute(
        sa.select(EntryRevision.issuer, EntryRevision.jws)
        .join(EntryState, sa.and_(EntryState.issuer == EntryRevision.issuer,
                                  EntryState.entry_id == EntryRevision.entry_id,
                                  EntryState.revision == EntryRevision.revision))
        .where(EntryState.status == "active"))
    for issuer, token in rows:
        by_issuer[issuer] += 1
        by_type.update({m["type"] for m in payload(token).get("measures", [])})
    return {"entries": sum(by_issuer.values()), "by_type": dict(sorted(by_type.items())),
            "by_issuer": dict(sorted(by_issuer.items())),
            "by_agency": _held_by_agency(session)}


def _held_by_agency(session: Session) -> dict[str, int]:
    """Entries each agency holds now: its latest directive for the entry imposes or amends,
    and the agency did not flag it (a flagged directive is not acted on)."""
    latest: dict[tuple[str, str, str], bool] = {}
    rows = session.execute(sa.select(Directive.agency, Directive.issuer, Directive.entry_id,
                                     Directive.action, Directive.status)
                           .where(Directive.status.not_in(("shadow", "withheld")))
                           .order_by(Directive.id))  # type: ignore[arg-type]
    for agency, issuer, entry_id, action, status in rows:
        latest[(agency, issuer, entry_id)] = action != "lift" and status != "flagged"
    held = Counter(agency for (agency, _, _), holds in latest.items() if holds)
    return dict(sorted(held.items()))


def _over_time(session: Session) -> dict[str, dict[str, int]]:
    """Per month (of acceptance): impositions, and lifts (revocations and expiries)."""
    months: dict[str, Counter[str]] = defaultdict(Counter)
    for op, at in session.execute(sa.select(EntryRevision.op, EntryRevision.accepted_at)):
        if op in ("impose", "revoke"):
            months[at.strftime("%Y-%m")]["imposed" if op == "impose" else "revoked"] += 1
    for (at,) in session.execute(sa.select(EntryState.expires_at)
                                 .where(EntryState.status == "expired")):
        if at is not None:
            months[at.strftime("%Y-%m")]["expired"] += 1
    return {m: {k: months[m][k] for k in ("imposed", "revoked", "expired")}
            for m in sorted(months)}


def _refusals(session: Session) -> dict[str, int]:
    rows = session.execute(sa.select(QuarantinedEntry.reason, sa.func.count())
                           .group_by(QuarantinedEntry.reason))
    return {str(reason): int(n) for reason, n in sorted(rows)}
