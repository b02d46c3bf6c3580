"""An agency's status after onboarding, and what each change does to its outbox.

    live ──disable──▶ disabled ──enable──▶ live          shadow ──enable──▶ live
      └──────────────┴──── offboard ────▶ offboarded (final; the id is never reused)

- **live**: routed and delivered.
- **shadow**: routed; directives are signed, stored as ``shadow`` and audited, never sent.
- **disabled**: nothing is delivered. Impositions and amendments are stored as ``withheld``;
  lifts are ``pending`` and wait, so no restriction the agency holds is stranded.
- **enable** releases: for each active entry the agency holds only on paper (its latest
  directive is ``shadow`` or ``withheld``), one impose of the entry's current revision
  becomes ``pending`` (the stored directive itself when it is that one); with ``backfill``,
  every active entry that concerns the agency. Withheld directives left over are
  ``superseded``; shadow ones stay as the record of what shadow mode computed.
- **offboard** refuses while directives are pending unless told to ``deliver`` them (now,
  and refuses again if any fails) or ``cancel`` them (recorded one by one); then it records
  what the agency still holds, as it reports it and as interdict believes, retires its keys,
  and removes it from routing.

Every change is an audit event in the same transaction as the change.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability.policy import active as policy_in_force
from interdict.accountability.policy import restrict
from interdict.auditlog import log
from interdict.directives import outbox
from interdict.directives.document import Cause, directive_id
from interdict.directives.routing import NOT_SENT, AgencyRoute, Route, outbox_status
from interdict.entries import store
from interdict.errors import DeliveryError, InterdictError, UsageError
from interdict.installation import Installation
from interdict.keys import jws, truststore
from interdict.storage import transaction, utcnow
from interdict.storage.models import Agency, Directive

LIVE, SHADOW, DISABLED, OFFBOARDED = "live", "shadow", "disabled", "offboarded"
PENDING_CHOICES = ("deliver", "cancel")
BATCH = 1000


@dataclass
class Released:
    """What a release (enable) or backfill put in the outbox."""

    released: int = 0  # stored shadow/withheld directives that became pending
    issued: int = 0  # new impositions signed for entries in force
    superseded: int = 0  # withheld directives that will never be sent

    def to_json(self) -> dict[str, int]:
        return {"released": self.released, "issued": self.issued,
                "superseded": self.superseded}


@dataclass(frozen=True)
class Offboarded:
    agency: str
    previous: str
    delivered: int
    cancelled: list[str]
    reported: list[str] | None  # what the agency's adapter says it holds; None: unreachable
    reported_error: str | None
    expected: list[str]  # what interdict's outbox says it holds

    def to_json(self) -> dict[str, Any]:
        return {"agency": self.agency, "previous": self.previous, "delivered": self.delivered,
                "cancelled": self.cancelled, "holdings_reported": self.reported,
                "holdings_error": self.reported_error, "holdings_expected": self.expected}


def locked(session: Session, agency_id: str) -> Agency:
    """The agency's row, locked against routing (which reads it FOR SHARE) until commit.

    Raises:
        UsageError: ``agency.unknown``, or ``agency.offboarded`` (nothing more can change).
    """
    agency = session.execute(sa.select(Agency).where(Agency.id == agency_id)
                             .with_for_update()).scalar_one_or_none()
    if agency is None:
        raise UsageError(f"no agency {agency_id!r} is registered (see `interdict agency "
                         "list`)", code="agency.unknown")
    if agency.status == OFFBOARDED:
        raise UsageError(f"agency {agency_id!r} was offboarded; its status can no longer "
                         "change", code="agency.offboarded")
    return agency


def _set_status(agency: Agency, status: str) -> None:
    agency.status = status
    agency.enabled = status == LIVE


def pending(session: Session, agency_id: str) -> Counter[str]:
    """Directives waiting to be delivered to the agency, by action."""
    rows = session.execute(sa.select(Directive.action, sa.func.count())
                           .where(Directive.agency == agency_id, Directive.status == "pending")
                           .group_by(Directive.action))
    return Counter({action: int(n) for action, n in rows})


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "none"


def _directives(n: int) -> str:
    return f"{n} directive{'' if n == 1 else 's'}"


# -- disable and enable ---------------------------------------------------------------------

def disable(installation: Installation, agency_id: str, *, actor: str | None = None) -> str:
    """Stop delivering to the agency (lifts keep queuing); return its previous status."""
    with transaction(installation.db) as session:
        agency = locked(session, agency_id)
        previous = agency.status
        if previous == DISABLED:
            return previous
        _set_status(agency, DISABLED)
        session.add(agency)
        log.append(session, [log.event("agency.disabled", actor=actor or log.operator(),
                                       agency=agency_id, previous=previous,
                                       pending=_counts(pending(session, agency_id)))])
    return previous


def enable(installation: Installation, agency_id: str, *, backfill: bool = False,
           actor: str | None = None) -> tuple[str, Released]:
    """Make the agency live and release what it should hold; return its previous status.
    Enabling a live agency again only releases (a backfill, or a release a crash cut short)."""
    actor = actor or log.operator()
    with transaction(installation.db) as session:
        agency = locked(session, agency_id)
        previous = agency.status
        _set_status(agency, LIVE)
        session.add(agency)
        log.append(session, [log.event("agency.enabled", actor=actor, agency=agency_id,
                                       previous=previous, backfill=backfill)])
    return previous, release(installation, agency_id, backfill=backfill, actor=actor)


def release(installation: Installation, agency_id: str, *, backfill: bool,
            actor: str | None = None, batch_size: int = BATCH) -> Released:
    """Put in the outbox one impose of the current revision for each active entry the agency
    holds only on paper (and, with ``backfill``, each active entry that concerns it), in
    batches; a rerun after a crash continues without doubling anything."""
    actor = actor or log.operator()
    result = Released()
    after = ("", "")
    while True:
        with transaction(installation.db) as session:
            agency = locked(session, agency_id)
            # what the policy in force gives it (the default: what its manifest asks for)
            route = restrict(policy_in_force(session), [
                AgencyRoute.from_manifest(agency.manifest, agency.status)])[0]
            now = utcnow()
            batch = store.in_force_page(session, after, batch_size, now)
            if not batch:
                break
            _release_batch(session, installation.engine_signer, route, batch, backfill, now,
                           result, actor)
            after = (batch[-1].issuer, batch[-1].entry_id)
    with transaction(installation.db) as session:
        agency = locked(session, agency_id)
        if agency.status == LIVE:
            result.superseded = _supersede_withheld(session, agency_id, actor)
        log.append(session, [log.event("agency.released", actor=actor,
                                       agency=agency_id, backfill=backfill,
                                       **result.to_json())])
    return result


def _latest(session: Session, agency_id: str,
            keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """Per entry, the agency's latest directive (whatever its status)."""
    wanted = set(keys)
    rows = session.execute(
        sa.select(Directive.issuer, Directive.entry_id, Directive.action, Directive.status,
                  Directive.directive_id, Directive.revision)
        .where(Directive.agency == agency_id,
               Directive.entry_id.in_({e for _, e in wanted}))  # type: ignore[attr-defined]
        .order_by(Directive.id))  # type: ignore[arg-type]
    return {(r.issuer, r.entry_id): r for r in rows if (r.issuer, r.entry_id) in wanted}


def _to_release(row: Any, last: Any, agency_id: str) -> str:
    """The directive that puts the entry's current revision at the agency: an impose of it,
    or the withheld one a policy's re-route wrote for it (whose id is its own, so the impose
    may exist already, delivered before the policy took the measure away)."""
    ordinary = directive_id(row.issuer, row.entry_id, row.revision, agency_id, "impose")
    if last is not None and last.action in outbox.HOLDING and last.status in NOT_SENT \
            and last.revision == row.revision \
            and last.directive_id != directive_id(row.issuer, row.entry_id, row.revision,
                                                  agency_id, last.action):
        return str(last.directive_id)
    return ordinary


def _release_batch(session: Session, signer: jws.Signer, route: AgencyRoute,
                   batch: Sequence[Any], backfill: bool, now: datetime, result: Released,
                   actor: str) -> None:
    latest = _latest(session, route.id, ((r.issuer, r.entry_id) for r in batch))
    wanted: dict[str, tuple[Route, Cause]] = {}
    for row in batch:
        last = latest.get((row.issuer, row.entry_id))
        if last is not None and last.action in outbox.HOLDING:
            if last.status not in NOT_SENT:
                continue  # delivered, or on its way (or dead: dead-letter retry's job)
        elif not backfill:
            continue
        document = outbox.payload(row.jws)
        measures = route.concerned_measures(document.get("measures", []))
        if measures:
            cause = Cause(row.issuer, row.entry_id, row.revision, row.digest, document,
                          document["reason"], document["effective_from"])
            wanted[_to_release(row, last, route.id)] = (Route(route, "impose", measures), cause)
    if not wanted:
        return
    stored = dict(session.execute(sa.select(Directive.directive_id, Directive.status).where(
        Directive.directive_id.in_(wanted))).all())  # type: ignore[attr-defined]
    target = outbox_status(route, "impose")
    flips = [d for d, status in stored.items() if status in NOT_SENT and status != target]
    if flips:
        _flip(session, route.id, flips, target, stored, actor)
        result.released += len(flips)
    fresh = [caused for d, caused in wanted.items() if d not in stored]
    result.issued += outbox.issue(session, signer, fresh, now).per_agency[route.id]


def _flip(session: Session, agency_id: str, ids: Sequence[str], target: str,
          previous: dict[str, str], actor: str) -> None:
    session.execute(sa.update(Directive).where(Directive.directive_id.in_(ids))  # type: ignore[attr-defined]
                    .values(status=target, next_attempt_at=None))
    log.append(session, [log.event("directive.released", actor=actor, directive_id=d,
                                   agency=agency_id, previous=previous[d], outcome=target)
                         for d in ids])


def _supersede_withheld(session: Session, agency_id: str, actor: str) -> int:
    ids = list(session.execute(sa.select(Directive.directive_id).where(
        Directive.agency == agency_id, Directive.status == "withheld")).scalars())
    if ids:
        session.execute(sa.update(Directive).where(Directive.directive_id.in_(ids))  # type: ignore[attr-defined]
                        .values(status="superseded"))
        log.append(session, [log.event("directive.superseded", actor=actor, directive_id=d,
                                       agency=agency_id) for d in ids])
    return len(ids)


# -- offboarding ----------------------------------------------------------------------------

def offboard(installation: Installation, agency_id: str, *, pending_action: str | None = None,
             actor: str | None = None) -> Offboarded:
    """Take the agency out for good, leaving no directive stranded.

    Raises:
        UsageError: ``agency.pending`` when directives wait and ``pending_action`` is None.
        DeliveryError: ``agency.undelivered`` when ``deliver`` could not deliver them all.
    """
    actor = actor or log.operator()
    if pending_action not in (None, *PENDING_CHOICES):
        raise UsageError(f"--pending is one of {', '.join(PENDING_CHOICES)}",
                         code="agency.pending_choice")
    with transaction(installation.db) as session:
        previous = locked(session, agency_id).status
        waiting = pending(session, agency_id)
    if waiting and pending_action is None:
        raise _pending_refusal(agency_id, waiting)
    delivered = _deliver_now(installation, agency_id) if pending_action == "deliver" else 0
    reported, reported_error = _reported_holdings(installation, agency_id)
    with transaction(installation.db) as session:
        agency = locked(session, agency_id)
        waiting = pending(session, agency_id)
        if waiting and pending_action != "cancel":  # still (or newly) pending
            raise _pending_refusal(agency_id, waiting) if pending_action is None else \
                DeliveryError(f"{_directives(sum(waiting.values()))} to {agency_id} could not "
                              f"be delivered ({_counts(waiting)}); see `interdict agency show "
                              f"{agency_id}`, fix the agency and run again, or offboard with "
                              "--pending cancel to record them as never delivered",
                              code="agency.undelivered")
        cancelled = _cancel(session, agency_id, ("pending", "withheld"), actor)
        expected = _expected_holdings(session, agency_id)
        log.append(session, _holding_events(session, agency_id, reported, expected, actor))
        _retire_keys(session, agency_id, actor)
        _set_status(agency, OFFBOARDED)
        session.add(agency)
        log.append(session, [log.event(
            "agency.offboarded", actor=actor, agency=agency_id, previous=previous,
            delivered=delivered, cancelled=len(cancelled), held_expected=len(expected),
            held_reported=len(reported) if reported is not None else None,
            holdings_error=reported_error, pending=pending_action)])
    if reported_error is None:  # the adapter was created: release its connections
        installation.adapter(agency_id).close()
    return Offboarded(agency_id, previous, delivered, cancelled, reported, reported_error,
                      expected)


def _pending_refusal(agency_id: str, waiting: Counter[str]) -> UsageError:
    lifts = " A lift left undelivered leaves a person restricted." if waiting["lift"] else ""
    return UsageError(
        f"agency {agency_id!r} has {_directives(sum(waiting.values()))} waiting to be delivered "
        f"({_counts(waiting)}).{lifts} Say what to do with them: --pending deliver (deliver "
        "them now; refused again if any fails) or --pending cancel (record each as never "
        "delivered)", code="agency.pending")


def _deliver_now(installation: Installation, agency_id: str) -> int:
    """Deliver everything pending at once, whatever its backoff (a disabled agency too)."""
    from interdict.directives.delivery import deliver_agency
    from interdict.directives.throttle import DeliveryPolicy

    with transaction(installation.db) as session:
        session.execute(sa.update(Directive).where(Directive.agency == agency_id,
                                                   Directive.status == "pending")
                        .values(next_attempt_at=None))
        keys = {k.kid: k.public_key for k in truststore.keys_of(session, "agency", agency_id)
                if k.status != "revoked"}
    adapter = installation.adapter(agency_id)
    policy = DeliveryPolicy.from_settings(adapter.context.manifest.get("settings", {}))
    outcome = deliver_agency(installation.db, adapter, keys, policy)
    return outcome.delivered + outcome.rejected + outcome.flagged  # every answered directive


def _reported_holdings(installation: Installation,
                       agency_id: str) -> tuple[list[str] | None, str | None]:
    try:
        return sorted(set(installation.adapter(agency_id).holdings())), None
    except InterdictError as exc:  # unreachable or uninstalled: offboard, and record that
        return None, f"{exc.code}: {exc.message}"[:200]


def _expected_holdings(session: Session, agency_id: str) -> list[str]:
    """What interdict believes the agency holds: per entry, the latest directive it received
    (a valid receipt came back), when that is an impose or amend."""
    latest: dict[tuple[str, str], tuple[str, str]] = {}
    for r in session.execute(sa.select(Directive.issuer, Directive.entry_id,
                                       Directive.directive_id, Directive.action)
                             .where(Directive.agency == agency_id,
                                    Directive.status == "delivered")
                             .order_by(Directive.id)):  # type: ignore[arg-type]
        latest[(r.issuer, r.entry_id)] = (r.directive_id, r.action)
    return sorted(d for d, action in latest.values() if action in outbox.HOLDING)


def _holding_events(session: Session, agency_id: str, reported: list[str] | None,
                    expected: list[str], actor: str) -> list[dict[str, Any]]:
    """One event per directive the agency still holds, by its account or by ours."""
    ids = sorted(set(expected) | set(reported or ()))
    known = {r.directive_id: r for r in session.execute(
        sa.select(Directive.directive_id, Directive.issuer, Directive.entry_id,
                  Directive.revision).where(Directive.directive_id.in_(ids)))}  # type: ignore[attr-defined]
    events = []
    for d in ids:
        row = known.get(d)
        events.append(log.event(
            "agency.holding", actor=actor, agency=agency_id, directive_id=d,
            issuer=row.issuer if row else None, entry_id=row.entry_id if row else None,
            revision=row.revision if row else None, expected=d in expected,
            reported=None if reported is None else d in reported))
    return events


def _cancel(session: Session, agency_id: str, statuses: Sequence[str],
            actor: str) -> list[str]:
    rows = session.execute(sa.select(Directive.directive_id, Directive.action, Directive.status)
                           .where(Directive.agency == agency_id,
                                  Directive.status.in_(statuses))  # type: ignore[attr-defined]
                           .order_by(Directive.id)).all()  # type: ignore[arg-type]
    if rows:
        session.execute(sa.update(Directive).where(
            Directive.directive_id.in_([r.directive_id for r in rows]))  # type: ignore[attr-defined]
            .values(status="cancelled", last_error="cancelled: the agency was offboarded"))
        log.append(session, [log.event("directive.cancelled", actor=actor,
                                       directive_id=r.directive_id, agency=agency_id,
                                       action=r.action, previous=r.status,
                                       outcome="agency_offboarded") for r in rows])
    return [r.directive_id for r in rows]


def _retire_keys(session: Session, agency_id: str, actor: str) -> None:
    """Its receipts stay verifiable (retired, not revoked); nothing new is accepted."""
    for key in truststore.keys_of(session, "agency", agency_id):
        if key.status == "active":
            truststore.retire_key(session, owner_kind="agency", owner_id=agency_id,
                                  kid=key.kid, actor=actor)


# -- what `agency show` reports -------------------------------------------------------------

def describe(installation: Installation, agency_id: str) -> dict[str, Any]:
    with transaction(installation.db) as session:
        agency = session.get(Agency, agency_id)
        if agency is None:
            raise UsageError(f"no agency {agency_id!r} is registered (see `interdict agency "
                             "list`)", code="agency.unknown")
        manifest = agency.manifest
        statuses = session.execute(sa.select(Directive.status, sa.func.count())
                                   .where(Directive.agency == agency_id)
                                   .group_by(Directive.status))
        keys = truststore.keys_of(session, "agency", agency_id)
        return {
            "id": agency.id, "name": agency.name, "adapter": agency.adapter,
            "status": agency.status, "contact": manifest.get("contact"),
            "registered_at": agency.created_at.isoformat(),
            "measures": manifest["measures"], "subject_fields": manifest["subject_fields"],
            "identifier_schemes": manifest.get("identifier_schemes"),
            "settings": manifest.get("settings", {}),
            "keys": [{"kid": k.kid, "status": k.status} for k in keys],
            "directives": {str(s): int(n) for s, n in statuses},
            "pending": dict(pending(session, agency_id)),
        }
