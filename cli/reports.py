"""Read-only views of an installation for ``status`` and ``quarantine``."""

from __future__ import annotations

import base64
from typing import Any

import sqlalchemy as sa

from interdict.accountability import flags
from interdict.auditlog import latest_checkpoint, size_and_root
from interdict.entries import store
from interdict.installation import Installation
from interdict.storage import transaction
from interdict.storage.models import Agency, Directive, EntryState, Issuer, QuarantinedEntry


def _counts(session: Any, column: Any, *where: Any) -> dict[str, int]:
    query = sa.select(column, sa.func.count()).group_by(column)
    for clause in where:
        query = query.where(clause)
    return {str(key): int(n) for key, n in session.execute(query)}


def status(installation: Installation) -> dict[str, Any]:
    with transaction(installation.db) as session:
        cursor = store.cursor(session)
        head = installation.public.head()
        size, root = size_and_root(session)
        checkpoint = latest_checkpoint(session)
        agencies = {}
        for agency in session.execute(sa.select(Agency).order_by(Agency.id)).scalars():
            agencies[agency.id] = {
                "adapter": agency.adapter, "enabled": agency.enabled,
                "measures": agency.manifest["measures"],
                "directives": _counts(session, Directive.status, Directive.agency == agency.id)}
        return {
            "home": str(installation.home.root),
            "public_database": {"head": head, "cursor": cursor, "backlog": max(head - cursor, 0)},
            "issuers": int(session.execute(sa.select(sa.func.count()).select_from(Issuer))
                           .scalar_one()),
            "entries": _counts(session, EntryState.status),
            "quarantined": int(session.execute(
                sa.select(sa.func.count()).select_from(QuarantinedEntry)
                .where(QuarantinedEntry.released == sa.false())).scalar_one()),
            "directives": _counts(session, Directive.status),
            "flags": flags.in_force_count(session),
            "agencies": agencies,
            "audit_log": {"size": size, "root": base64.b64encode(root).decode(),
                          "checkpoint": checkpoint.size if checkpoint else None},
        }


def quarantined(installation: Installation) -> list[dict[str, Any]]:
    with transaction(installation.db) as session:
        rows = session.execute(sa.select(QuarantinedEntry)
                               .where(QuarantinedEntry.released == sa.false())
                               .order_by(QuarantinedEntry.public_seq)).scalars()  # type: ignore[arg-type]
        return [{"seq": r.public_seq, "reason": r.reason, "detail": r.detail,
                 "at": r.at.isoformat()} for r in rows]


def quarantined_one(installation: Installation, seq: int) -> dict[str, Any] | None:
    with transaction(installation.db) as session:
        row = session.execute(sa.select(QuarantinedEntry)
                              .where(QuarantinedEntry.public_seq == seq)
                              .order_by(QuarantinedEntry.id.desc())  # type: ignore[union-attr]
                              .limit(1)).scalar_one_or_none()
        if row is None:
            return None
        return {"seq": row.public_seq, "reason": row.reason, "detail": row.detail,
                "at": row.at.isoformat(), "released": row.released,
                "raw": row.raw.decode("utf-8", "replace")}
