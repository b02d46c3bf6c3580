"""Appending to the audit log inside the caller's transaction.

Every event is a leaf of an RFC 6962 Merkle tree. Its bytes are compact JSON with sorted keys,
stored exactly as hashed, so ``events.jsonl`` can be rebuilt byte for byte and any tool that
speaks RFC 6962 recomputes the same root. An event names documents by identifier and digest and
never carries personal data: the log is kept forever, the documents are not.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.auditlog.merkle import CompactRange, leaf_hash
from interdict.keys.jws import canonical_json
from interdict.storage import bulk
from interdict.storage.models import AuditEvent, AuditHead
from interdict.storage.types import utcnow

ENGINE = "interdict"
_INSERT = sa.insert(AuditEvent.__table__)  # type: ignore[attr-defined]


def operator() -> str:
    """The actor name for commands a person runs."""
    try:
        return f"operator:{getpass.getuser()}"
    except Exception:  # no user database entry (containers): still attribute the action
        return "operator:unknown"


def event(action: str, /, *, actor: str = ENGINE, outcome: str = "ok",
          **refs: Any) -> dict[str, Any]:
    """An event not yet appended: ``refs`` are identifiers and digests, never personal data."""
    return {"action": action, "actor": actor, "outcome": outcome,
            "refs": {k: v for k, v in refs.items() if v is not None}}


def _head(session: Session) -> AuditHead:
    # FOR UPDATE serialises appenders on PostgreSQL; SQLite transactions are already
    # BEGIN IMMEDIATE (storage/database.py), so one writer holds the head at a time.
    head = session.execute(
        sa.select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, size=0, compact_range=b"")
        session.add(head)
        session.flush()
    return head


def append(session: Session, events: Iterable[Mapping[str, Any]]) -> range:
    """Append events in order; return their sequence numbers (leaf indexes)."""
    head = _head(session)
    tree = CompactRange.from_bytes(head.size, head.compact_range)
    first = tree.size
    at = utcnow().isoformat(timespec="microseconds").replace("+00:00", "Z")
    rows = []
    for item in events:
        data = canonical_json({**item, "seq": tree.size, "at": at})
        leaf = leaf_hash(data)
        rows.append({"seq": tree.size, "event": data, "leaf": leaf})
        tree.append(leaf)
    if rows:
        bulk.executemany(session, _INSERT, rows)
        head.size = tree.size
        head.compact_range = tree.to_bytes()
        session.add(head)
    return range(first, tree.size)


def size_and_root(session: Session) -> tuple[int, bytes]:
    head = session.get(AuditHead, 1)
    if head is None:
        return 0, CompactRange.from_bytes(0, b"").root()
    return head.size, CompactRange.from_bytes(head.size, head.compact_range).root()
