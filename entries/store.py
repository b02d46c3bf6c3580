"""Recording admission outcomes: one transaction per batch, cursor included.

Accepted revisions, the entries' current state, quarantined rows, their audit events and the
new cursor position commit together, so a crash leaves either all of a batch or none of it.

``retry`` re-examines quarantined rows under today's trust store (after an issuer key was added
late, say), with the seq and publication time they had: the ones now accepted are stored as if
ingested and released from quarantine, the others keep their row with the new reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from interdict.accountability import policy
from interdict.auditlog import log
from interdict.directives.outbox import payload
from interdict.entries import gate
from interdict.entries.admission import Accepted, Admission, EntryStatus, Published, Refused
from interdict.keys import jws
from interdict.keys.truststore import TrustSnapshot
from interdict.publicdb import PublicDatabase, published_entry
from interdict.storage import bulk, tombstones
from interdict.storage.database import transaction
from interdict.storage.models import Cursor, EntryRevision, EntryState, QuarantinedEntry
from interdict.storage.types import utcnow

INGEST_CURSOR = "ingest"


def cursor(session: Session, name: str = INGEST_CURSOR) -> int:
    row = session.get(Cursor, name)
    return row.position if row else 0


def known_status(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str],
                                                                              EntryStatus]:
    """The current state of the entries a batch touches, and for those in force what an
    extension is judged against (two queries per batch)."""
    found = _states(session, keys)
    active = {key for key, status in found.items() if status.status == "active"}
    for key, (expires_at, assessment, extensions) in extension_facts(session, active).items():
        found[key] = replace(found[key], expires_at=expires_at, assessment=assessment,
                             extensions=extensions)
    return found


def _states(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str],
                                                                        EntryStatus]:
    wanted = set(keys)
    if not wanted:
        return {}
    entry_ids = {entry_id for _, entry_id in wanted}
    rows = session.execute(sa.select(EntryState.issuer, EntryState.entry_id, EntryState.revision,
                                     EntryState.status)
                           .where(EntryState.entry_id.in_(entry_ids)))  # type: ignore[attr-defined]
    return {(r.issuer, r.entry_id): EntryStatus(r.revision, r.status) for r in rows
            if (r.issuer, r.entry_id) in wanted}


def in_force_page(session: Session, after: tuple[str, str], limit: int, now: datetime, *,
                  routed_only: bool = False) -> list[sa.Row[Any]]:
    """One page of entries in force (active, unexpired) with their current revision's
    ``revision``, ``digest`` and ``jws``, in key order after ``after``; ``routed_only`` skips
    an entry whose current revision routing has not reached yet."""
    query = (sa.select(EntryState.issuer, EntryState.entry_id, EntryRevision.revision,
                       EntryRevision.digest, EntryRevision.jws)
             .join(EntryRevision, sa.and_(EntryRevision.issuer == EntryState.issuer,
                                          EntryRevision.entry_id == EntryState.entry_id,
                                          EntryRevision.revision == EntryState.revision))
             .where(EntryState.status == "active",
                    sa.or_(EntryState.expires_at.is_(None),  # type: ignore[union-attr]
                           EntryState.expires_at > now),  # type: ignore[operator]
                    sa.tuple_(EntryState.issuer, EntryState.entry_id) > sa.tuple_(*after))
             .order_by(EntryState.issuer, EntryState.entry_id).limit(limit))
    if routed_only:
        query = query.where(EntryRevision.routed == sa.true())
    return list(session.execute(query))


def extension_facts(session: Session, keys: Iterable[tuple[str, str]]
                    ) -> dict[tuple[str, str], tuple[datetime | None, str | None, int]]:
    """Per entry: its latest revision's expiry and assessment, and its extensions since its
    latest impose, counted from the accepted revisions (one query)."""
    wanted = set(keys)
    if not wanted:
        return {}
    latest = sa.case((EntryRevision.revision == EntryState.revision, EntryRevision.jws),
                     else_=None)
    rows = session.execute(
        sa.select(EntryRevision.issuer, EntryRevision.entry_id, EntryRevision.op,
                  EntryRevision.expires_at, latest.label("jws"))
        .join(EntryState, sa.and_(EntryState.issuer == EntryRevision.issuer,
                                  EntryState.entry_id == EntryRevision.entry_id))
        .where(EntryState.entry_id.in_({e for _, e in wanted}))  # type: ignore[attr-defined]
        .order_by(EntryRevision.issuer, EntryRevision.entry_id, EntryRevision.revision))
    history: dict[tuple[str, str], list[tuple[str, datetime | None]]] = {}
    assessments: dict[tuple[str, str], str | None] = {}
    for r in rows:
        key = (r.issuer, r.entry_id)
        if key not in wanted:
            continue
        history.setdefault(key, []).append((r.op, r.expires_at))
        if r.jws is not None:
            assessments[key] = gate.assessment_of(payload(r.jws))
    return {key: (revisions[-1][1], assessments.get(key), gate.count_extensions(revisions))
            for key, revisions in history.items()}


def review_clock_starts(session: Session, issuer: str | None = None
                        ) -> dict[tuple[str, str], datetime]:
    """Per entry in force (of ``issuer``, or all): when its review clock last started
    (gate.review_clock_start), walking its accepted revisions (one query)."""
    query = (sa.select(EntryRevision.issuer, EntryRevision.entry_id, EntryRevision.op,
                       EntryRevision.accepted_at, EntryRevision.jws)
             .join(EntryState, sa.and_(EntryState.issuer == EntryRevision.issuer,
                                       EntryState.entry_id == EntryRevision.entry_id))
             .where(EntryState.status == "active",
                    EntryRevision.revision <= EntryState.revision)
             .order_by(EntryRevision.issuer, EntryRevision.entry_id, EntryRevision.revision))
    if issuer is not None:
        query = query.where(EntryState.issuer == issuer)
    history: dict[tuple[str, str], list[tuple[str, str | None, datetime]]] = {}
    for r in session.execute(query):
        history.setdefault((r.issuer, r.entry_id), []).append(
            (r.op, gate.assessment_of(payload(r.jws)), r.accepted_at))
    starts = {key: gate.review_clock_start(revisions) for key, revisions in history.items()}
    return {key: start for key, start in starts.items() if start is not None}


def record(session: Session, outcomes: Sequence[Accepted | Refused], position: int,
           cursor_name: str = INGEST_CURSOR) -> None:
    """Store a batch's outcomes and move the cursor to ``position``, in the caller's transaction."""
    now = utcnow()
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    refused = [o for o in outcomes if isinstance(o, Refused)]
    _store_accepted(session, accepted, now)
    if refused:
        session.execute(sa.insert(QuarantinedEntry.__table__), [
            {"public_seq": r.seq, "reason": r.reason, "detail": r.detail, "raw": r.raw, "at": now}
            for r in refused])
    log.append(session, [_event(o) for o in outcomes])
    row = session.get(Cursor, cursor_name) or Cursor(name=cursor_name)
    row.position = max(row.position or 0, position)
    session.add(row)


_INSERT_REVISION = sa.insert(EntryRevision.__table__)  # type: ignore[attr-defined]
_INSERT_STATE = sa.insert(EntryState.__table__)  # type: ignore[attr-defined]


def _store_accepted(session: Session, accepted: Sequence[Accepted], now: datetime) -> None:
    if accepted:
        bulk.executemany(session, _INSERT_REVISION, [_revision_row(a, now) for a in accepted])
        _update_state(session, accepted, now)


def _revision_row(a: Accepted, now: object) -> dict[str, object]:
    return {"issuer": a.issuer, "entry_id": a.entry_id, "revision": a.revision, "op": a.op,
            "public_seq": a.seq, "digest": a.digest, "kid": a.kid, "jws": a.jws,
            "effective_from": a.effective_from, "expires_at": a.expires_at, "accepted_at": now,
            "routed": False}


def _update_state(session: Session, accepted: Sequence[Accepted], now: object) -> None:
    latest: dict[tuple[str, str], Accepted] = {}
    for a in accepted:  # a batch may carry several revisions of one entry: keep the last
        latest[(a.issuer, a.entry_id)] = a
    existing = _states(session, latest)
    inserts: list[dict[str, object]] = []
    updates: list[dict[str, object]] = []
    for key, a in latest.items():
        row = {"issuer": a.issuer, "entry_id": a.entry_id, "revision": a.revision,
               "status": "revoked" if a.op == "revoke" else "active",
               "expires_at": a.expires_at, "updated_at": now}
        (updates if key in existing else inserts).append(row)
    bulk.executemany(session, _INSERT_STATE, inserts)
    for row in updates:
        session.execute(sa.update(EntryState)
                        .where(EntryState.issuer == row["issuer"],
                               EntryState.entry_id == row["entry_id"])
                        .values(revision=row["revision"], status=row["status"],
                                expires_at=row["expires_at"], updated_at=row["updated_at"]))


def _event(outcome: Accepted | Refused) -> dict[str, object]:
    if isinstance(outcome, Accepted):
        return log.event("entry.accepted", public_seq=outcome.seq, issuer=outcome.issuer,
                         entry_id=outcome.entry_id, revision=outcome.revision, op=outcome.op,
                         kid=outcome.kid, digest=outcome.digest,
                         gap_after=outcome.previous if outcome.gap else None,
                         extension=outcome.extensions if outcome.extension else None)
    return log.event("entry.quarantined", outcome=outcome.reason, public_seq=outcome.seq,
                     digest=jws.digest(outcome.raw))


# -- retrying quarantined entries -----------------------------------------------------------

RETRY_BATCH = 1000


@dataclass(frozen=True)
class Retried:
    """What a retry decided for one quarantined row."""

    seq: int
    outcome: str  # released | refused | unavailable | erased
    reason: str | None  # the reason it is (still) refused for; None once released
    previous: str  # the reason it had been quarantined for
    detail: str


class _StoredStatus(Mapping[tuple[str, str], EntryStatus]):
    """Entry states read on demand: a retry touches few entries, unknown in advance."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._cache: dict[tuple[str, str], EntryStatus | None] = {}

    def __getitem__(self, key: tuple[str, str]) -> EntryStatus:
        if key not in self._cache:
            self._cache[key] = known_status(self._session, [key]).get(key)
        found = self._cache[key]
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter([k for k, v in self._cache.items() if v is not None])

    def __len__(self) -> int:
        return sum(v is not None for v in self._cache.values())


def retry(engine: Engine, public: PublicDatabase, seqs: Sequence[int] | None = None,
          now: datetime | None = None) -> list[Retried]:
    """Re-examine quarantined rows (all, or those of ``seqs``) in public order, in batches.

    The bytes examined are the ones kept in quarantine; the publication time (the evidence of
    when it was signed) is read from the public database, and a row whose bytes are no longer
    there at that seq is left alone and reported ``unavailable``.
    """
    now = now or utcnow()
    results: list[Retried] = []
    after = 0
    while True:
        with transaction(engine) as session:
            query = (sa.select(QuarantinedEntry)
                     .where(QuarantinedEntry.released == sa.false(),
                            QuarantinedEntry.public_seq > after)
                     .order_by(QuarantinedEntry.public_seq, QuarantinedEntry.id)  # type: ignore[arg-type]
                     .limit(RETRY_BATCH).with_for_update())
            if seqs is not None:
                query = query.where(QuarantinedEntry.public_seq.in_(set(seqs)))  # type: ignore[attr-defined]
            rows = session.execute(query).scalars().all()
            if not rows:
                return results
            published = _published(public, [r.public_seq for r in rows])
            results.extend(_retry_batch(session, rows, published, now))
            after = rows[-1].public_seq


def _published(public: PublicDatabase, seqs: Sequence[int]) -> dict[int, Published]:
    query = sa.select(published_entry).where(published_entry.c.seq.in_(seqs))
    with public.engine.connect() as conn:
        return {r.seq: Published(r.seq, r.jws, r.published_at) for r in conn.execute(query)}


def _retry_batch(session: Session, rows: Sequence[QuarantinedEntry],
                 published: Mapping[int, Published], now: datetime) -> list[Retried]:
    admission = Admission(TrustSnapshot.load(session), _StoredStatus(session), now,
                          policy.admission_policy(session))
    results, accepted, events = [], [], []
    for row in rows:
        if tombstones.is_tombstone(row.raw):
            results.append(Retried(row.public_seq, "erased", row.reason, row.reason,
                                   "erased after retention: nothing left to examine"))
            continue
        found = published.get(row.public_seq)
        if found is None or found.jws.encode("utf-8", "surrogateescape") != row.raw:
            results.append(Retried(row.public_seq, "unavailable", row.reason, row.reason,
                                   "the public database no longer holds these bytes at this "
                                   "seq; kept in quarantine as it was"))
            continue
        outcome = admission.admit(found)
        was = {"public_seq": row.public_seq, "digest": jws.digest(row.raw), "was": row.reason}
        if isinstance(outcome, Accepted):
            accepted.append(outcome)
            row.released = True
            events += [_event(outcome), log.event("entry.released", **was)]
            results.append(Retried(row.public_seq, "released", None, row.reason,
                                   f"accepted as {outcome.entry_id} revision {outcome.revision}"))
        else:
            results.append(Retried(row.public_seq, "refused", outcome.reason, row.reason,
                                   outcome.detail))
            row.reason, row.detail, row.at = outcome.reason, outcome.detail, now
            events.append(log.event("entry.retry_refused", outcome=outcome.reason, **was))
        session.add(row)
    session.flush()
    _store_accepted(session, accepted, now)
    log.append(session, events)
    return results
