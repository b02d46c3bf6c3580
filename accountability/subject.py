"""Subject access: every measure on one person, across all agencies, and nothing else.

An entry belongs to the report when any accepted revision of it names the identifier
(``scheme`` equal, ``value`` equal after removing white space and ignoring case). For each
such entry the report gives what the person is entitled to know: the issuer, legal basis,
reason, dates, the appeal route, the data held about them, and per agency which directives
went out, which subject fields each carried, the delivery status and the agency's receipt
(with its flag, when the agency flagged the directive: it will not act on it, and why), and
when the measure was lifted there, and the objections recorded against it (dates and
outcome, accountability/objections.py). Other people's entries are never read into it.

Reading it is itself an audit event (``subject.report_read``) naming the actor and the
purpose, with the identifier only as a keyed pseudonym (accountability/pseudonyms.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability import objections
from interdict.accountability.pseudonyms import pseudonym
from interdict.accountability.timing import iso
from interdict.auditlog import log
from interdict.directives.outbox import payload
from interdict.directives.receipts import flag_of
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.storage import transaction
from interdict.storage.models import Directive, EntryRevision, EntryState, Receipt
from interdict.storage.tombstones import is_tombstone
from interdict.storage.types import utcnow

READ = "subject.report_read"
MAX_PURPOSE = 200


@dataclass(frozen=True)
class SubjectId:
    scheme: str
    value: str

    @classmethod
    def parse(cls, text: str) -> SubjectId:
        """``SCHEME:VALUE``, e.g. ``passport:E12345678``.

        Raises:
            UsageError: ``subject.id`` when either part is missing.
        """
        scheme, sep, value = text.partition(":")
        if not sep or not scheme.strip() or not value.strip():
            raise UsageError(f"{text!r} is not SCHEME:VALUE (e.g. passport:E12345678)",
                             code="subject.id")
        return cls(scheme.strip().lower(), _norm(value))

    def matches(self, subject: Mapping[str, Any]) -> bool:
        return any(i.get("scheme") == self.scheme and _norm(str(i.get("value", ""))) == self.value
                   for i in subject.get("identifiers", ()))


def _norm(value: str) -> str:
    return "".join(value.split()).casefold()


def check_purpose(purpose: str, who: SubjectId) -> str:
    """A purpose is required, short, and carries no identifier: it goes into the audit log.

    Raises:
        UsageError: ``subject.purpose`` naming what is wrong.
    """
    text = " ".join(purpose.split())
    if not text:
        raise UsageError("say why the report is read (--purpose), e.g. 'subject access "
                         "request 2026-118'", code="subject.purpose")
    if len(text) > MAX_PURPOSE:
        raise UsageError(f"the purpose is {len(text)} characters; keep it under "
                         f"{MAX_PURPOSE}", code="subject.purpose")
    if who.value in _norm(text):
        raise UsageError("the purpose contains the identifier: it is written to the audit "
                         "log, which never holds personal data; use a case number instead",
                         code="subject.purpose")
    return text


def report(installation: Installation, who: SubjectId, purpose: str,
           actor: str | None = None) -> dict[str, Any]:
    """The report, and its ``subject.report_read`` audit event in the same transaction."""
    purpose = check_purpose(purpose, who)
    now = utcnow()
    with transaction(installation.db) as session:
        measures = [_measure(session, key, revisions)
                    for key, revisions in _entries_of(session, who).items()]
        log.append(session, [log.event(
            READ, actor=actor or log.operator(), purpose=purpose,
            subject=pseudonym(installation.home, f"{who.scheme}:{who.value}"),
            measures=len(measures))])
    measures.sort(key=lambda m: (m["status"] != "active", m["effective_from"]))
    return {"generated_at": iso(now), "identifier": {"scheme": who.scheme, "value": who.value},
            "active": sum(m["status"] == "active" for m in measures), "measures": measures}


def _entries_of(session: Session, who: SubjectId) -> dict[tuple[str, str],
                                                           list[tuple[Any, dict[str, Any]]]]:
    """The revisions of every entry any revision of which names the person."""
    found: dict[tuple[str, str], list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
    rows = session.execute(sa.select(EntryRevision).order_by(
        EntryRevision.issuer, EntryRevision.entry_id, EntryRevision.revision)).scalars()
    matched: set[tuple[str, str]] = set()
    for row in rows:
        if is_tombstone(row.jws):
            continue  # erased after retention: nothing about the person is left to report
        document = payload(row.jws)
        key = (row.issuer, row.entry_id)
        found[key].append((row, document))
        if who.matches(document.get("subject", {})):
            matched.add(key)
    return {key: found[key] for key in sorted(matched)}


def _measure(session: Session, key: tuple[str, str],
             revisions: list[tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    issuer, entry_id = key
    state = session.get(EntryState, key)
    # A revoke carries no subject or measures: what was imposed is in the last revision that did
    imposed = next(d for _, d in reversed(revisions) if d["op"] != "revoke")
    last_row, last = revisions[-1]
    lifted_at = None
    if last["op"] == "revoke":
        lifted_at = last["effective_from"]
    elif state is not None and state.status == "expired":
        lifted_at = imposed["expires_at"]
    return {
        "issuer": issuer, "entry_id": entry_id,
        "status": state.status if state else "unknown",
        "measures": [m["type"] + (f" ({m['scope']})" if m.get("scope") else "")
                     for m in imposed.get("measures", [])],
        "legal_basis": imposed["legal_basis"], "reason": imposed["reason"],
        "listed_at": imposed.get("listed_at"), "effective_from": imposed["effective_from"],
        "expires_at": imposed["expires_at"], "lifted_at": lifted_at,
        "redress": last.get("redress") or imposed["redress"],
        # the entry gate (entry v2; absent from v1 entries): the decision, why, and notice
        "decision": imposed.get("decision"), "assessment": imposed.get("assessment"),
        "notice": imposed.get("notice"), "notice_exemption": imposed.get("notice_exemption"),
        "data_held": imposed.get("subject", {}),
        "revisions": [{"revision": r.revision, "op": r.op, "accepted_at": iso(r.accepted_at)}
                      for r, _ in revisions],
        "agencies": _agencies(session, issuer, entry_id),
        "objections": [{"received_at": iso(o.received_at), "decided_at": iso(o.decided_at),
                        "outcome": o.outcome}
                       for o in objections.listed(session, entry=key)],
        "last_revision": last_row.revision,
    }


def _agencies(session: Session, issuer: str, entry_id: str) -> dict[str, list[dict[str, Any]]]:
    rows = session.execute(
        sa.select(Directive.directive_id, Directive.agency, Directive.action,
                  Directive.revision, Directive.status, Directive.jws, Directive.created_at,
                  Receipt.status.label("receipt"), Receipt.jws.label("receipt_jws"))
        .outerjoin(Receipt, Receipt.directive_id == Directive.directive_id)
        .where(Directive.issuer == issuer, Directive.entry_id == entry_id)
        .order_by(Directive.id))  # type: ignore[arg-type]
    agencies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        sent = payload(r.jws)
        receipt = payload(r.receipt_jws) if r.receipt_jws else {}
        agencies[r.agency].append({
            "action": r.action, "revision": r.revision, "status": r.status,
            "issued_at": iso(r.created_at), "fields_sent": sorted(sent.get("subject", {})),
            "receipt": r.receipt, "receipt_at": receipt.get("at"),
            "detail": receipt.get("detail"), "flag": flag_of(receipt)})
    return dict(agencies)
