"""The transactional outbox: directives are written in the same transaction as their cause.

``plan`` turns accepted revisions into signed directives; ``expire`` turns entries past their
``expires_at`` into lifts. Both mark their cause done in the same transaction that writes the
directives and their audit events, so a crash leaves either all of it or none of it, and a
rerun continues where the last commit stopped. ``claim`` leases pending directives to one
delivery worker at a time (docs/delivery.md, "Many workers").
"""

from __future__ import annotations

import os
import socket
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability import policy
from interdict.auditlog import log
from interdict.directives.document import Cause, build, iso
from interdict.directives.routing import AgencyRoute, Route, outbox_status, route
from interdict.keys import jws, offload
from interdict.keys.jwk import unb64u
from interdict.storage import bulk, tombstones
from interdict.storage.models import Agency, Directive, EntryRevision, EntryState

HOLDING = ("impose", "amend")


@dataclass
class Issued:
    """What a planning step wrote to the outbox, per agency."""

    causes: int = 0
    per_agency: Counter[str] = field(default_factory=Counter)


def agency_routes(session: Session) -> list[AgencyRoute]:
    """Every agency routing must consider: live, shadow and disabled ones (a disabled agency
    still gets its lifts), not offboarded ones. FOR SHARE on PostgreSQL: an ``agency
    enable|disable`` waits for this transaction, so no directive is written under a status
    that changed meanwhile (SQLite transactions are serialised anyway). Each is narrowed
    to what the measure policy in force gives it (accountability/policy.py)."""
    rows = session.execute(sa.select(Agency).where(Agency.status != "offboarded")
                           .order_by(Agency.id).with_for_update(read=True)).scalars()
    routes = [AgencyRoute.from_manifest(row.manifest, row.status) for row in rows]
    return policy.restrict(policy.active(session), routes)


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
    """The payload of a JWS interdict already verified and stored. For a document erased
    after retention, the facts its tombstone kept (no personal data) and ``tombstone``."""
    if token.startswith("{"):  # a JWS never does (storage/tombstones.py)
        marker = tombstones.read(token)
        if marker is not None:
            return {**marker["kept"], "tombstone": marker}
    document: dict[str, Any] = orjson.loads(unb64u(token.split(".")[1]))
    return document


def plan(session: Session, signer: jws.Signer, agencies: Sequence[AgencyRoute], limit: int,
         now: datetime) -> Issued:
    """Route up to ``limit`` accepted revisions that have no directives yet."""
    # Columns, not ORM objects: a batch is a thousand revisions, and nothing here changes one.
    revisions = session.execute(
        sa.select(EntryRevision.id, EntryRevision.issuer, EntryRevision.entry_id,
                  EntryRevision.revision, EntryRevision.digest, EntryRevision.op,
                  EntryRevision.jws)
        .where(EntryRevision.routed == sa.false())
        .order_by(EntryRevision.id).limit(limit)  # type: ignore[arg-type]
        .with_for_update(skip_locked=True)).all()
    holders = holders_of(session, ((r.issuer, r.entry_id) for r in revisions))
    issued = Issued(causes=len(revisions))
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    caused: list[tuple[Route, Cause]] = []
    for revision in revisions:
        document = payload(revision.jws)
        cause = Cause(revision.issuer, revision.entry_id, revision.revision, revision.digest,
                      document, document["reason"], document["effective_from"])
        held = holders[(revision.issuer, revision.entry_id)]
        routes = route(revision.op, document.get("measures", []), held, agencies)
        caused.extend((r, cause) for r in routes)
        held.clear()
        held.update(r.agency.id for r in routes if r.action in HOLDING)
    _write(caused, signer, now, rows, events, issued, session=session)
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
        _write([(r, cause) for r in routes], signer, now, rows, events, issued)
        state.status = "expired"
        state.updated_at = now
        session.add(state)
    _flush(session, rows, events)
    return issued


#: with a session, ``_write`` stores its rows this many at a time: while it does, a signing
#: worker (keys/offload.py) signs the next ones
_FLUSH_EVERY = 1000


def _write(caused: Sequence[tuple[Route, Cause]], signer: jws.Signer, now: datetime,
           rows: list[dict[str, Any]], events: list[dict[str, Any]], issued: Issued, *,
           session: Session | None = None) -> None:
    """The directives' rows and ``directive.issued`` events, in order, added to ``rows`` and
    ``events``; with ``session``, stored (with the events before them) every
    ``_FLUSH_EVERY`` rows. A worker process signs them if there is one (keys/offload.py),
    while this one writes down those already signed."""
    directive_ids: list[str] = []  # not the documents: a batch's would all be held at once

    def built() -> Iterator[bytes]:
        for r, cause in caused:
            document = build(r, cause, now)
            directive_ids.append(document["directive_id"])
            yield jws.canonical_json(document)

    tokens = offload.sign_all(signer, built(), jws.TYP_DIRECTIVE)  # has read all of built()
    for (r, cause), directive_id, token in zip(caused, directive_ids, tokens, strict=True):
        status = outbox_status(r.agency, r.action)
        rows.append({"directive_id": directive_id, "agency": r.agency.id,
                     "action": r.action, "issuer": cause.issuer, "entry_id": cause.entry_id,
                     "revision": cause.revision, "jws": token, "status": status,
                     "attempts": 0, "next_attempt_at": None, "last_error": None,
                     "created_at": now, "delivered_at": None})
        events.append(log.event("directive.issued", directive_id=directive_id,
                                agency=r.agency.id, action=r.action, issuer=cause.issuer,
                                entry_id=cause.entry_id, revision=cause.revision,
                                entry_digest=cause.digest, kid=signer.kid,
                                digest=jws.digest(token),
                                status=None if status == "pending" else status,
                                policy=r.agency.policy, reroute=cause.reroute))
        issued.per_agency[r.agency.id] += 1
        if session is not None and len(rows) >= _FLUSH_EVERY:
            _flush(session, rows, events)
            rows.clear()
            events.clear()


def issue(session: Session, signer: jws.Signer, caused: Sequence[tuple[Route, Cause]],
          now: datetime) -> Issued:
    """Write directives for causes chosen elsewhere (an agency's backfill at onboarding, a
    reconcile lift, a policy's re-route). A route not shaped by the policy (a lift to a
    holder) names the policy in force."""
    issued = Issued(causes=len(caused))
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    in_force = policy.active(session).digest if any(
        r.agency.policy is None for r, _ in caused) else None
    _write([(replace(r, agency=replace(r.agency, policy=in_force))
             if r.agency.policy is None else r, cause) for r, cause in caused],
           signer, now, rows, events, issued)
    _flush(session, rows, events)
    return issued


_INSERT = sa.insert(Directive.__table__)  # type: ignore[attr-defined]


def _flush(session: Session, rows: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    bulk.executemany(session, _INSERT, rows)
    if events:
        log.append(session, events)


# -- claims: which worker delivers which pending directives -------------------------------

@dataclass
class Claimed:
    """Directives one worker now holds a lease on, and those it dead-lettered instead."""

    rows: list[tuple[int, str, str]] = field(default_factory=list)  # (row id, directive_id, jws)
    dead: int = 0
    actions: dict[int, str] = field(default_factory=dict)  # row id -> impose | amend | lift


def worker_id() -> str:
    """Who holds a lease: host and process, so a lease of a dead process can be broken."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_here(worker: str) -> bool:
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's worker: only its lease expiring frees its rows
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def release_dead_workers(session: Session, agency: str, now: datetime) -> list[dict[str, Any]]:
    """Free the leases of workers on this machine that died mid-batch (SIGKILL, power cut),
    so a rerun delivers their rows at once instead of after the lease."""
    holders = session.execute(
        sa.select(Directive.claimed_by).distinct().where(
            Directive.agency == agency, Directive.status == "pending",
            Directive.claimed_until > now)).scalars().all()  # type: ignore[operator]
    events = []
    for worker in holders:
        if worker and _dead_here(worker):
            freed = session.execute(
                sa.update(Directive).where(Directive.agency == agency,
                                           Directive.status == "pending",
                                           Directive.claimed_by == worker)
                .values(claimed_by=None, claimed_until=None)).rowcount
            events.append(log.event("delivery.lease_released", agency=agency, worker=worker,
                                    count=freed, outcome="worker_gone"))
    return events


#: rows read per page while looking for claimable ones; a small claim (a circuit's probe, a
#: low rate) still reads a full page, so a backlog of blocked rows costs few round trips
PAGE = 500


def _claimable(agency: str, due_at: datetime) -> list[sa.ColumnElement[bool]]:
    """Pending for the agency, due, and not leased by anyone."""
    return [Directive.agency == agency, Directive.status == "pending",  # type: ignore[list-item]
            sa.or_(Directive.next_attempt_at.is_(None),  # type: ignore[union-attr]
                   Directive.next_attempt_at <= due_at),  # type: ignore[operator]
            sa.or_(Directive.claimed_until.is_(None),  # type: ignore[union-attr]
                   Directive.claimed_until <= due_at)]  # type: ignore[operator]


def _unblocked(session: Session, agency: str, limit: int,
               due_at: datetime) -> list[sa.Row[Any]]:
    """Up to ``limit`` claimable rows that are first of their entry, in outbox order, locked
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).

    Pages of plain queries rather than one with a correlated "is it the first pending of its
    entry?" subquery: both databases' planners misjudged that one as the outbox grew.
    SQLite walked the agency's pending rows for each candidate; PostgreSQL, without
    statistics, did the same through the outbox index, and with them sorted every pending
    row of the agency, payloads included, to find the first 500 (docs/performance.md). A
    page is a range scan of ix_directive_outbox in id order; the check is one grouped lookup
    in ix_directive_pending_entry for the page's entries.

    A page is locked as it is read, the usual queue pattern: a second worker's page skips
    the first one's rows instead of reading them and losing the race to lock them. The
    first page is as long as the claim, so an
    ordinary claim locks only what it sends; later pages, read only when rows were blocked,
    are at least ``PAGE`` long, so a small claim (a circuit's probe) does not walk a blocked
    backlog a row at a time. Rows read and not sent stay locked until the claim commits;
    they are not leased.
    """
    chosen: list[sa.Row[Any]] = []
    after, size = 0, limit
    while len(chosen) < limit:
        page = session.execute(
            sa.select(Directive.id, Directive.directive_id, Directive.jws, Directive.attempts,
                      Directive.action, Directive.issuer, Directive.entry_id)
            .where(*_claimable(agency, due_at), Directive.id > after)  # type: ignore[operator]
            .order_by(Directive.id).limit(size)  # type: ignore[arg-type]
            .with_for_update(skip_locked=True)).all()
        first = _first_pending(session, agency, {(r.issuer, r.entry_id) for r in page})
        chosen += [r for r in page if first.get((r.issuer, r.entry_id)) == r.id]
        if len(page) < size:
            break
        after, size = page[-1].id, max(limit, PAGE)
    return chosen[:limit]


def _first_pending(session: Session, agency: str,
                   entries: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The id of the first pending directive of each entry for the agency: any other
    pending one waits for it (a lift must never overtake the imposition it ends)."""
    if not entries:
        return {}
    # Two plain IN lists, not a tuple IN: SQLite searches the index by every column of the
    # first kind and only by agency for the second. Pairs the cross product adds (one entry
    # id under two issuers) are dropped below.
    rows = session.execute(
        sa.select(Directive.issuer, Directive.entry_id, sa.func.min(Directive.id))
        .where(Directive.agency == agency,
               Directive.issuer.in_(sorted({i for i, _ in entries})),  # type: ignore[attr-defined]
               Directive.entry_id.in_(sorted({e for _, e in entries})),  # type: ignore[attr-defined]
               Directive.status == "pending")
        .group_by(Directive.issuer, Directive.entry_id))
    return {(issuer, entry_id): first for issuer, entry_id, first in rows
            if (issuer, entry_id) in entries}


def claim(session: Session, agency: str, worker: str, limit: int, due_at: datetime,
          until: datetime, max_attempts: int) -> Claimed:
    """Lease up to ``limit`` pending directives due at ``due_at``, in outbox order.

    A row is skipped when another worker holds it (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
    the lease everywhere), and while an earlier directive for the same entry and agency is
    still pending: an agency must never receive a lift before the imposition it ends. Each
    claimed row counts an attempt and gets a ``delivery.attempted`` event in the same
    transaction, so a crash after this point still shows in the log and in the count.
    """
    rows = _unblocked(session, agency, limit, due_at)
    claimed, events = Claimed(), []
    unconfirmed = [r for r in rows if r.attempts >= max_attempts]
    for r in unconfirmed:  # its last attempt crashed before any outcome was recorded
        events.append(log.event("directive.dead_lettered", directive_id=r.directive_id,
                                agency=agency, attempts=r.attempts,
                                outcome="delivery.unconfirmed"))
    if unconfirmed:
        session.execute(sa.update(Directive).where(
            Directive.id.in_([r.id for r in unconfirmed]))  # type: ignore[union-attr]
            .values(status="dead", claimed_by=None, claimed_until=None,
                    last_error="delivery.unconfirmed: the last attempt ended without an "
                               "outcome (the worker stopped)"))
        claimed.dead = len(unconfirmed)
    sending = [r for r in rows if r.attempts < max_attempts]
    if sending:
        session.execute(sa.update(Directive).where(
            Directive.id.in_([r.id for r in sending]))  # type: ignore[union-attr]
            .values(claimed_by=worker, claimed_until=until, attempts=Directive.attempts + 1))
    for r in sending:
        claimed.rows.append((r.id, r.directive_id, r.jws))
        claimed.actions[r.id] = r.action
        events.append(log.event("delivery.attempted", directive_id=r.directive_id,
                                agency=agency, attempt=r.attempts + 1, worker=worker,
                                outcome="started"))
    if events:  # appending locks the audit head: not for an empty claim
        log.append(session, events)
    return claimed
