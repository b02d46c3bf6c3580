"""The transactional outbox: directives are written in the same transaction as their cause.

``plan`` turns accepted revisions into signed directives; ``expire`` turns entries past their
``expires_at`` into lifts. Both mark their cause done in the same transaction that writes the
directives and their audit events, so a crash leaves either all of it or none of it, and a
rerun continues where the last commit stopped.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session

from interdict.auditlog import log
from interdict.directives.document import Cause, build, iso
from interdict.directives.routing import AgencyRoute, Route, route
from interdict.keys import jws
from interdict.keys.jwk import unb64u
from interdict.storage.models import Agency, Directive, EntryRevision, EntryState

HOLDING = ("impose", "amend")


@dataclass
class Issued:
    """What a planning step wrote to the outbox, per agency."""

    causes: int = 0
    per_agency: Counter[str] = field(default_factory=Counter)


def agency_routes(session: Session) -> list[AgencyRoute]:
    rows = session.execute(sa.select(Agency).where(Agency.enabled == sa.true())
                           .order_by(Agency.id)).scalars()
    return [AgencyRoute.from_manifest(row.manifest) for row in rows]


def holders_of(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str],
                                                                          set[str]]:
    """Per entry, the agencies whose latest directive for it imposes or amends."""
    wanted = set(keys)
    latest: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    if wanted:
        rows = session.execute(
            sa.select(Directive.issuer, Directive.entry_id, Directive.agency, Directive.action)
            .where(Directive.entry_id.in_({e for _, e in wanted}))  # type: ignore[attr-defined]
            .order_by(Directive.id))  # type: ignore[arg-type]
        for r in rows:
            if (r.issuer, r.entry_id) in wanted:
                latest[(r.issuer, r.entry_id)][r.agency] = r.action
    return {key: {a for a, action in latest[key].items() if action in HOLDING} for key in wanted}


def payload(token: str) -> dict[str, Any]:
    """The payload of a JWS interdict already verified and stored."""
    document: dict[str, Any] = orjson.loads(unb64u(token.split(".")[1]))
    return document


def plan(session: Session, signer: jws.Signer, agencies: Sequence[AgencyRoute], limit: int,
         now: datetime) -> Issued:
    """Route up to ``limit`` accepted revisions that have no directives yet."""
    revisions = session.execute(
        sa.select(EntryRevision).where(EntryRevision.routed == sa.false())
        .order_by(EntryRevision.id).limit(limit)  # type: ignore[arg-type]
        .with_for_update(skip_locked=True)).scalars().all()
    holders = holders_of(session, ((r.issuer, r.entry_id) for r in revisions))
    issued = Issued(causes=len(revisions))
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for revision in revisions:
        document = payload(revision.jws)
        cause = Cause(revision.issuer, revision.entry_id, revision.revision, revision.digest,
                      document, document["reason"], document["effective_from"])
        held = holders[(revision.issuer, revision.entry_id)]
        routes = route(revision.op, document.get("measures", []), held, agencies)
        _write(routes, cause, signer, now, rows, events, issued)
        held.clear()
        held.update(r.agency.id for r in routes if r.action in HOLDING)
    _flush(session, rows, events)
    if revisions:
        session.execute(sa.update(EntryRevision).where(
            EntryRevision.id.in_([r.id for r in revisions]))  # type: ignore[union-attr]
            .values(routed=True))
    return issued


def expire(session: Session, signer: jws.Signer, agencies: Sequence[AgencyRoute], limit: int,
           now: datetime) -> Issued:
    """Lift entries whose ``expires_at`` has passed: every restriction ends."""
    states = session.execute(
        sa.select(EntryState).where(EntryState.status == "active",
                                    EntryState.expires_at <= now)  # type: ignore[operator]
        .limit(limit).with_for_update(skip_locked=True)).scalars().all()
    holders = holders_of(session, ((s.issuer, s.entry_id) for s in states))
    issued = Issued(causes=len(states))
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for state in states:
        revision = session.execute(sa.select(EntryRevision).where(
            EntryRevision.issuer == state.issuer, EntryRevision.entry_id == state.entry_id,
            EntryRevision.revision == state.revision)).scalar_one()
        document = payload(revision.jws)
        expired_at = iso(state.expires_at) if state.expires_at else iso(now)
        cause = Cause(state.issuer, state.entry_id, state.revision, revision.digest, document,
                      f"expired at {expired_at}", expired_at)
        held = holders[(state.issuer, state.entry_id)]
        routes = [Route(a, "lift", []) for a in agencies if a.id in held]
        events.append(log.event("entry.expired", issuer=state.issuer, entry_id=state.entry_id,
                                revision=state.revision))
        _write(routes, cause, signer, now, rows, events, issued)
        state.status = "expired"
        state.updated_at = now
        session.add(state)
    _flush(session, rows, events)
    return issued


def _write(routes: Sequence[Route], cause: Cause, signer: jws.Signer, now: datetime,
           rows: list[dict[str, Any]], events: list[dict[str, Any]], issued: Issued) -> None:
    for r in routes:
        document = build(r, cause, now)
        token = signer.sign_document(document, jws.TYP_DIRECTIVE)
        rows.append({"directive_id": document["directive_id"], "agency": r.agency.id,
                     "action": r.action, "issuer": cause.issuer, "entry_id": cause.entry_id,
                     "revision": cause.revision, "jws": token, "status": "pending",
                     "attempts": 0, "next_attempt_at": None, "last_error": None,
                     "created_at": now, "delivered_at": None})
        events.append(log.event("directive.issued", directive_id=document["directive_id"],
                                agency=r.agency.id, action=r.action, issuer=cause.issuer,
                                entry_id=cause.entry_id, revision=cause.revision,
                                entry_digest=cause.digest, kid=signer.kid,
                                digest=jws.digest(token)))
        issued.per_agency[r.agency.id] += 1


def _flush(session: Session, rows: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(sa.insert(Directive), rows)
    if events:
        log.append(session, events)
