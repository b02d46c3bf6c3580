"""Reconcile: compare what an agency holds with what it should hold, and put the difference
back in the outbox.

What an agency *should* hold: for every active entry, its latest directive to that agency,
when that directive imposes or amends. The agency reports what it *does* hold
(``Adapter.holdings()``: directive ids in force). Every difference is drift:

- ``missing``: should hold it, it was delivered, it is not held: the directive is requeued;
- ``in_flight``: should hold it, still pending (or delivered after the agency answered): nothing
  to do, delivery is on it;
- ``stuck``: should hold it, but it was dead-lettered or rejected: reported, for
  ``dead-letter retry`` or the agency (and a lift whose resends by reconcile are used up, see
  below);
- ``flagged``: should hold it, but the agency flagged it (it will not act on it, with a reason
  code): reported, not drift (``interdict flags`` lists it) and never requeued;
- ``stale``: holds an older directive of an entry it should hold a newer one of: the newer one
  is requeued (or in flight);
- ``unlifted``: holds what it should no longer hold: the lift is requeued, or issued when none
  was ever written (e.g. the agency was disabled when the entry ended). A lift the agency
  rejected (or flagged) is requeued too, since lifts are as reliable as impositions; but it
  keeps the attempts it used, so one agency that keeps refusing gets it once per reconcile
  run and at most ``max_attempts`` times in all; then it is ``stuck``, for
  ``dead-letter retry`` (a fresh budget) once someone has settled it with the agency;
- ``unknown``: holds an id interdict never sent it: reported for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.auditlog import log
from interdict.directives import deadletter, outbox
from interdict.directives.document import Cause, directive_id, iso
from interdict.directives.routing import NOT_SENT, AgencyRoute, Route
from interdict.directives.throttle import DeliveryPolicy
from interdict.keys import jws
from interdict.storage import tombstones
from interdict.storage.models import Agency, Directive, EntryRevision, EntryState

HOLDING = outbox.HOLDING
KINDS = ("missing", "in_flight", "stuck", "flagged", "stale", "unlifted", "unknown")
NOT_DRIFT = ("in_flight", "flagged")


@dataclass
class Drift:
    """One agency's comparison; each kind lists directive ids."""

    agency: str
    expected: int = 0
    held: int = 0
    found: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KINDS})
    requeued: list[str] = field(default_factory=list)
    lifts_issued: list[str] = field(default_factory=list)
    error: str | None = None  # the agency could not say what it holds

    @property
    def drifted(self) -> int:
        return sum(len(v) for k, v in self.found.items() if k not in NOT_DRIFT)

    def to_json(self) -> dict[str, Any]:
        return {"agency": self.agency, "expected": self.expected, "held": self.held,
                "drift": self.drifted, **self.found, "requeued": self.requeued,
                "lifts_issued": self.lifts_issued, "error": self.error}


@dataclass(frozen=True)
class _Latest:
    id: int
    directive_id: str
    issuer: str
    entry_id: str
    action: str
    status: str
    attempts: int
    delivered_at: datetime | None
    entry_status: str

    @property
    def should_hold(self) -> bool:
        return self.entry_status == "active" and self.action in HOLDING


def compare(session: Session, agency: str, held: Iterable[str], asked_at: datetime,
            signer: jws.Signer, now: datetime) -> Drift:
    """Classify the drift, requeue or issue what closes it, and audit all of it, in the
    caller's transaction. ``asked_at`` is when the agency listed its holdings: a directive
    delivered after that is in flight, not missing."""
    held_ids = set(held)
    drift = Drift(agency, held=len(held_ids))
    latest, known = _directives(session, agency)
    max_attempts = _policy(session, agency).max_attempts
    requeue: list[Directive] = []
    refused: list[Directive] = []  # rejected lifts
    for row in latest.values():
        if row.should_hold:
            drift.expected += 1
            if row.directive_id not in held_ids:
                kind = _kind_of_absent(row, asked_at)
                drift.found[kind].append(row.directive_id)
                if kind == "missing":
                    requeue.append(session.get_one(Directive, row.id))
    to_lift: list[_Latest] = []
    for held_id in sorted(held_ids - {r.directive_id for r in latest.values()
                                       if r.should_hold}):
        entry = known.get(held_id)
        if entry is None:
            drift.found["unknown"].append(held_id)
            continue
        row = latest[entry]
        if row.should_hold:
            drift.found["stale"].append(held_id)
            continue
        if row.action in HOLDING:  # never lifted (e.g. the agency was disabled then)
            drift.found["unlifted"].append(held_id)
            to_lift.append(row)
            continue
        kind = _kind_of_absent(row, asked_at)  # of the lift that should have ended it
        if kind == "missing":
            drift.found["unlifted"].append(held_id)
            requeue.append(session.get_one(Directive, row.id))
        elif row.status == "rejected" and row.attempts < max_attempts:
            drift.found["unlifted"].append(held_id)
            refused.append(session.get_one(Directive, row.id))
        else:
            drift.found[kind].append(row.directive_id)
    requeue = deadletter.requeue(session, requeue, actor=log.ENGINE, reason="reconcile")
    # a refused lift keeps its attempts: the bound on how often an agency is asked again
    requeue += deadletter.requeue(session, refused, actor=log.ENGINE, reason="reconcile",
                                  fresh_budget=False)
    drift.requeued = [r.directive_id for r in requeue]
    drift.lifts_issued = _issue_lifts(session, agency, to_lift, signer, now)
    _audit(session, drift)
    return drift


def _policy(session: Session, agency: str) -> DeliveryPolicy:
    return DeliveryPolicy.from_settings(session.get_one(Agency, agency).manifest.get(
        "settings", {}))


def _kind_of_absent(row: _Latest, asked_at: datetime) -> str:
    if row.status in ("dead", "rejected"):
        return "stuck"
    if row.status == "flagged":
        return "flagged"
    if row.status == "delivered" and row.delivered_at is not None \
            and row.delivered_at <= asked_at:
        return "missing"
    return "in_flight"


def _directives(session: Session, agency: str) -> tuple[dict[tuple[str, str], _Latest],
                                                         dict[str, tuple[str, str]]]:
    """The latest directive per entry for this agency, and every directive id it was sent."""
    rows = session.execute(
        sa.select(Directive.id, Directive.directive_id, Directive.issuer, Directive.entry_id,
                  Directive.action, Directive.status, Directive.attempts,
                  Directive.delivered_at,
                  EntryState.status.label("entry_status"))
        .join(EntryState, sa.and_(EntryState.issuer == Directive.issuer,
                                  EntryState.entry_id == Directive.entry_id))
        .where(Directive.agency == agency,
               Directive.status.not_in(NOT_SENT))  # type: ignore[attr-defined]
        .order_by(Directive.id))  # type: ignore[arg-type]
    latest: dict[tuple[str, str], _Latest] = {}
    known: dict[str, tuple[str, str]] = {}
    for r in rows:
        key = (r.issuer, r.entry_id)
        latest[key] = _Latest(*r)
        known[r.directive_id] = key
    return latest, known


def _issue_lifts(session: Session, agency: str, rows: Sequence[_Latest], signer: jws.Signer,
                 now: datetime) -> list[str]:
    """Lift entries the agency still holds though they ended, through the outbox as usual."""
    if not rows:
        return []
    registered = session.get_one(Agency, agency)
    target = AgencyRoute.from_manifest(registered.manifest, registered.status)
    caused = []
    for row in rows:
        state = session.get_one(EntryState, (row.issuer, row.entry_id))
        revision = session.execute(sa.select(EntryRevision).where(
            EntryRevision.issuer == state.issuer, EntryRevision.entry_id == state.entry_id,
            EntryRevision.revision == state.revision)).scalar_one()
        if tombstones.is_tombstone(revision.jws):
            continue  # erased after retention: reported as unlifted, for a person to chase
        cause = Cause(state.issuer, state.entry_id, state.revision, revision.digest,
                      outbox.payload(revision.jws),
                      f"entry {state.status}; still held at the agency (reconcile)", iso(now))
        if directive_id(*_lift_key(cause, agency)) not in _existing(session, cause, agency):
            caused.append((Route(target, "lift", []), cause))
    outbox.issue(session, signer, caused, now)
    return [directive_id(*_lift_key(cause, agency)) for _, cause in caused]


def _lift_key(cause: Cause, agency: str) -> tuple[str, str, int, str, str]:
    return cause.issuer, cause.entry_id, cause.revision, agency, "lift"


def _existing(session: Session, cause: Cause, agency: str) -> set[str]:
    return set(session.execute(sa.select(Directive.directive_id).where(
        Directive.agency == agency, Directive.issuer == cause.issuer,
        Directive.entry_id == cause.entry_id)).scalars())


def _audit(session: Session, drift: Drift) -> None:
    events = [log.event("reconcile.drift", agency=drift.agency, directive_id=directive_id,
                        outcome=kind)
              for kind, ids in drift.found.items() if kind not in NOT_DRIFT
              for directive_id in ids]
    events.append(log.event("reconcile.compared", agency=drift.agency, expected=drift.expected,
                            held=drift.held, drift=drift.drifted,
                            requeued=len(drift.requeued), lifts=len(drift.lifts_issued),
                            outcome="drift" if drift.drifted else "ok"))
    log.append(session, events)


def unreachable(session: Session, agency: str, error: str, code: str) -> Drift:
    """An agency that cannot list its holdings: nothing compared, the failure audited."""
    log.append(session, [log.event("reconcile.compared", agency=agency, outcome=code)])
    return Drift(agency, error=error)
