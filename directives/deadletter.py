"""Dead letters: directives delivery gave up on, and putting directives back in the outbox.

Rejected lifts wait here too. A lift is as owed as the imposition it ends, so an agency's
refusal (a ``rejected`` receipt, or a lift it flagged, ``receipt.flagged_lift``) leaves it
waiting for the same operator attention and the same ``dead-letter retry``. A rejected impose
or amend does not: the agency refused it for a reason its issuer must fix, with a new revision.

A requeued directive is the same signed document with the same id, so an agency that did
apply it after all answers ``duplicate`` and nothing happens twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.auditlog import log
from interdict.directives import throttle
from interdict.storage import tombstones
from interdict.storage.models import Directive


@dataclass
class Requeued:
    requeued: list[str] = field(default_factory=list)
    # dead directives (or rejected lifts) not retried because a later directive for the same
    # entry and agency exists: sending an old imposition after its lift would restrict
    # someone again, and an old lift after a new imposition would end it
    superseded: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"requeued": self.requeued, "superseded": self.superseded}


def dead_letters(session: Session, agency: str | None = None) -> list[Directive]:
    """Dead directives and rejected lifts (``status`` tells which), in outbox order."""
    query = sa.select(Directive).where(sa.or_(
        Directive.status == "dead",
        sa.and_(Directive.status == "rejected", Directive.action == "lift"),
    )).order_by(Directive.id)  # type: ignore[arg-type]
    if agency is not None:
        query = query.where(Directive.agency == agency)
    return list(session.execute(query).scalars())


def requeue(session: Session, rows: Sequence[Directive], *, actor: str,
            reason: str, fresh_budget: bool = True) -> list[Directive]:
    """Make directives pending and due now, with a fresh attempt budget (or, with
    ``fresh_budget=False``, the attempts they already used); audit each one with the status
    it left.

    A directive erased after retention is never sent again: the update skips tombstones
    (checked by the database under the row lock, so an erasure that committed meanwhile
    wins). Returns the rows requeued."""
    if not rows:
        return []
    session.flush()
    was = {r.id: r.status for r in rows}
    values: dict[str, Any] = {"status": "pending", "next_attempt_at": None, "claimed_by": None,
                              "claimed_until": None, "delivered_at": None}
    if fresh_budget:
        values["attempts"] = 0
    requeued = set(session.execute(
        sa.update(Directive)
        .where(Directive.id.in_([r.id for r in rows]),  # type: ignore[union-attr]
               tombstones.present(Directive.jws))
        .values(**values)
        .returning(Directive.id).execution_options(synchronize_session=False)).scalars())
    done = [r for r in rows if r.id in requeued]
    for row in done:  # keep the caller's objects in step with the database
        session.refresh(row)
    if done:
        log.append(session, [log.event("directive.requeued", actor=actor,
                                       directive_id=r.directive_id, agency=r.agency,
                                       outcome=reason, was=was[r.id]) for r in done])
    return done


def retry_dead(session: Session, *, actor: str, agency: str | None = None) -> Requeued:
    """Requeue every dead letter and rejected lift (of one agency) that is still the latest
    for its entry, and close the circuit of each agency concerned."""
    result = Requeued()
    retry = []
    for row in dead_letters(session, agency):
        if _superseded(session, row):
            result.superseded.append(row.directive_id)
        else:
            retry.append(row)
    retry = requeue(session, retry, actor=actor, reason="dead_letter_retry")
    result.requeued = [r.directive_id for r in retry]
    # the operator says the agency is worth trying again now, not after its cooldown
    closed = [e for a in sorted({r.agency for r in retry})
              for e in throttle.reset(session, a, actor=actor, reason="dead_letter_retry")]
    if closed:
        log.append(session, closed)
    return result


def _superseded(session: Session, row: Directive) -> bool:
    later = session.execute(sa.select(Directive.id).where(
        Directive.agency == row.agency, Directive.issuer == row.issuer,
        Directive.entry_id == row.entry_id, Directive.id > row.id).limit(1)).first()  # type: ignore[operator]
    return later is not None
