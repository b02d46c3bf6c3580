"""Recording admission outcomes: one transaction per batch, cursor included.

Accepted revisions, the entries' current state, quarantined rows, their audit events and the
new cursor position commit together, so a crash leaves either all of a batch or none of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session

from interdict.auditlog import log
from interdict.entries.admission import Accepted, EntryStatus, Refused
from interdict.keys import jws
from interdict.storage.models import Cursor, EntryRevision, EntryState, QuarantinedEntry
from interdict.storage.types import utcnow

INGEST_CURSOR = "ingest"


def cursor(session: Session, name: str = INGEST_CURSOR) -> int:
    row = session.get(Cursor, name)
    return row.position if row else 0


def known_status(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str],
                                                                              EntryStatus]:
    """The current state of the entries a batch touches (one query per batch)."""
    wanted = set(keys)
    if not wanted:
        return {}
    entry_ids = {entry_id for _, entry_id in wanted}
    rows = session.execute(sa.select(EntryState.issuer, EntryState.entry_id, EntryState.revision,
                                     EntryState.status)
                           .where(EntryState.entry_id.in_(entry_ids)))  # type: ignore[attr-defined]
    return {(r.issuer, r.entry_id): EntryStatus(r.revision, r.status) for r in rows
            if (r.issuer, r.entry_id) in wanted}


def record(session: Session, outcomes: Sequence[Accepted | Refused], position: int,
           cursor_name: str = INGEST_CURSOR) -> None:
    """Store a batch's outcomes and move the cursor to ``position``, in the caller's transaction."""
    now = utcnow()
    accepted = [o for o in outcomes if isinstance(o, Accepted)]
    refused = [o for o in outcomes if isinstance(o, Refused)]
    if accepted:
        session.execute(sa.insert(EntryRevision), [_revision_row(a, now) for a in accepted])
        _update_state(session, accepted, now)
    if refused:
        session.execute(sa.insert(QuarantinedEntry), [
            {"public_seq": r.seq, "reason": r.reason, "detail": r.detail, "raw": r.raw, "at": now}
            for r in refused])
    log.append(session, [_event(o) for o in outcomes])
    row = session.get(Cursor, cursor_name) or Cursor(name=cursor_name)
    row.position = max(row.position or 0, position)
    session.add(row)


def _revision_row(a: Accepted, now: object) -> dict[str, object]:
    return {"issuer": a.issuer, "entry_id": a.entry_id, "revision": a.revision, "op": a.op,
            "public_seq": a.seq, "digest": a.digest, "kid": a.kid, "jws": a.jws,
            "effective_from": a.effective_from, "expires_at": a.expires_at, "accepted_at": now,
            "routed": False}


def _update_state(session: Session, accepted: Sequence[Accepted], now: object) -> None:
    latest: dict[tuple[str, str], Accepted] = {}
    for a in accepted:  # a batch may carry several revisions of one entry: keep the last
        latest[(a.issuer, a.entry_id)] = a
    existing = known_status(session, latest)
    inserts, updates = [], []
    for key, a in latest.items():
        row = {"issuer": a.issuer, "entry_id": a.entry_id, "revision": a.revision,
               "status": "revoked" if a.op == "revoke" else "active",
               "expires_at": a.expires_at, "updated_at": now}
        (updates if key in existing else inserts).append(row)
    if inserts:
        session.execute(sa.insert(EntryState), inserts)
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
                         gap_after=outcome.previous if outcome.gap else None)
    return log.event("entry.quarantined", outcome=outcome.reason, public_seq=outcome.seq,
                     digest=jws.digest(outcome.raw))
