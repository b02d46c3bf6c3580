"""Raising a duty warning once: a late lift, a review coming due.

The ``escalation`` table holds one row per (kind, ref); inserting with ON CONFLICT DO NOTHING
tells which warnings are new, so two runs (or two workers at once on PostgreSQL) append the
audit event once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from interdict.auditlog import log
from interdict.storage.models import Escalation


def raise_once(session: Session, kind: str, warnings: Mapping[str, dict[str, Any]],
               now: datetime, *, actor: str = log.ENGINE) -> list[str]:
    """Record each warning (ref → audit refs) not raised before, append one ``kind`` event
    for each, in the caller's transaction; return the refs that were new."""
    if not warnings:
        return []
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    rows = [{"kind": kind, "ref": ref, "at": now} for ref in warnings]
    inserted = session.execute(
        dialect.insert(Escalation).values(rows).on_conflict_do_nothing()
        .returning(Escalation.ref)).scalars().all()  # type: ignore[arg-type]
    new = sorted(inserted)
    if new:
        outcome_of = {ref: str(warnings[ref].get("outcome", "ok")) for ref in new}
        log.append(session, [log.event(kind, actor=actor, outcome=outcome_of[ref],
                                       **{k: v for k, v in warnings[ref].items()
                                          if k != "outcome"})
                             for ref in new])
    return new


def raised(session: Session, kind: str, refs: Sequence[str] | None = None) -> set[str]:
    query = sa.select(Escalation.ref).where(Escalation.kind == kind)
    if refs is not None:
        query = query.where(Escalation.ref.in_(refs))  # type: ignore[attr-defined]
    return set(session.execute(query).scalars())
