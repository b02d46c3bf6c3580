"""Agency flags, surfaced: directives an agency verified but will not act on, and the issuer's
view of where each of its entries stands at each agency.

An agency flags a directive with a signed receipt v2 whose status is ``flagged``, a reason code
from a closed list (``directives.receipts.FLAG_CODES``) and a detail. interdict records it as an
answer (it is not retried) and never as delivered: the directive's outbox status is
``flagged``. The operator sees them in ``interdict flags`` and in ``interdict status``, the
issuer in ``interdict issuer report``, the person in the subject report, the public as counts
in ``interdict stats``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability.timing import iso
from interdict.directives.outbox import payload
from interdict.directives.receipts import flag_of
from interdict.errors import UsageError
from interdict.storage.models import Directive, EntryState, Issuer, Receipt


def _latest_ids() -> Any:
    """SQL: the id of the latest directive per (agency, issuer, entry), as issuer_report and
    the statistics read it: what the agency was last told about the entry."""
    return (sa.select(sa.func.max(Directive.id))
            .group_by(Directive.agency, Directive.issuer, Directive.entry_id)
            .scalar_subquery())


def _flagged_rows(*columns: Any, in_force: bool = True) -> Any:
    """Flagged directives joined to their receipts; ``in_force``: only flags in force, the
    latest directive to an agency about an entry in force (an amend or lift answers a flag,
    and an erased or lifted entry holds nothing)."""
    query = (sa.select(*columns)
             .join(Receipt, Receipt.directive_id == Directive.directive_id)
             .where(Directive.status == "flagged"))
    if in_force:
        query = (query.join(EntryState, sa.and_(EntryState.issuer == Directive.issuer,
                                                EntryState.entry_id == Directive.entry_id))
                 .where(EntryState.status == "active",
                        Directive.id.in_(_latest_ids())))  # type: ignore[union-attr]
    return query


def flagged(session: Session, issuer: str | None = None, *, in_force: bool = True
            ) -> list[dict[str, Any]]:
    """The directives whose agency flagged them (only the flags in force unless ``in_force``
    is false: then every flag ever recorded), by issuer, entry, revision and agency."""
    query = _flagged_rows(Directive.directive_id, Directive.agency, Directive.issuer,
                          Directive.entry_id, Directive.revision, Directive.action,
                          Directive.delivered_at, Receipt.jws, in_force=in_force).order_by(
        Directive.issuer, Directive.entry_id, Directive.revision, Directive.agency)
    if issuer is not None:
        query = query.where(Directive.issuer == issuer)
    found = []
    for r in session.execute(query):
        receipt = payload(r.jws)
        flag = flag_of(receipt) or {}
        found.append({"issuer": r.issuer, "entry_id": r.entry_id, "revision": r.revision,
                      "agency": r.agency, "action": r.action, "directive_id": r.directive_id,
                      "code": flag.get("code"), "detail": flag.get("detail"),
                      "at": receipt.get("at"), "recorded_at": iso(r.delivered_at)})
    return found


def in_force_count(session: Session) -> int:
    """How many flags are in force (``interdict status``)."""
    query = _flagged_rows(Directive.id)
    return int(session.execute(sa.select(sa.func.count()).select_from(query.subquery()))
               .scalar_one())


def counts(session: Session) -> dict[str, dict[str, int]]:
    """Flags in force, by reason code and by agency: counts only, for the public
    statistics."""
    by_code: Counter[str] = Counter()
    by_agency: Counter[str] = Counter()
    for agency, token in session.execute(_flagged_rows(Directive.agency, Receipt.jws)):
        flag = flag_of(payload(token)) or {}
        by_code[str(flag.get("code") or "unknown")] += 1
        by_agency[agency] += 1
    return {"by_code": dict(sorted(by_code.items())), "by_agency": dict(sorted(by_agency.items()))}


def issuer_report(session: Session, issuer: str) -> dict[str, Any]:
    """Per entry of the issuer, per agency, where its latest directive stands: delivered,
    flagged (with code and detail), rejected, pending, dead.

    Raises:
        UsageError: ``issuer.unknown``.
    """
    if session.get(Issuer, issuer) is None:
        raise UsageError(f"issuer {issuer!r} is not registered", code="issuer.unknown")
    latest: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    rows = session.execute(
        sa.select(Directive.entry_id, Directive.agency, Directive.action, Directive.revision,
                  Directive.status, Directive.directive_id, Receipt.status.label("receipt"),
                  Receipt.jws.label("receipt_jws"))
        .outerjoin(Receipt, Receipt.directive_id == Directive.directive_id)
        .where(Directive.issuer == issuer).order_by(Directive.id))  # type: ignore[arg-type]
    for r in rows:
        flag = flag_of(payload(r.receipt_jws)) if r.receipt_jws else None
        latest[r.entry_id][r.agency] = {
            "action": r.action, "revision": r.revision, "status": r.status,
            "receipt": r.receipt, "directive_id": r.directive_id,
            "flag": flag}
    states = session.execute(sa.select(EntryState).where(EntryState.issuer == issuer)
                             .order_by(EntryState.entry_id)).scalars()  # type: ignore[arg-type]
    entries = [{"entry_id": s.entry_id, "revision": s.revision, "status": s.status,
                "agencies": dict(sorted(latest.get(s.entry_id, {}).items()))} for s in states]
    statuses = Counter(a["status"] for e in entries for a in e["agencies"].values())
    return {"issuer": issuer, "entries": entries, "directives": dict(sorted(statuses.items())),
            "flags": statuses.get("flagged", 0)}
