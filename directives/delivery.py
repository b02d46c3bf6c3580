"""Delivering the outbox to one agency, and recording what came back.

At-least-once: a directive stays pending until a valid signed receipt is stored; failures are
retried with exponential backoff and jitter, and dead-lettered after the manifest's
``max_attempts``. Exactly-once in effect: the directive (and its id) never changes between
attempts, and agencies apply each id once.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from interdict.agencies.base import Adapter
from interdict.auditlog import log
from interdict.directives import receipts
from interdict.errors import DeliveryError, VerificationError
from interdict.keys import jws
from interdict.storage.database import transaction
from interdict.storage.models import Directive, Receipt
from interdict.storage.types import utcnow

BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
DEFAULT_MAX_ATTEMPTS = 8


@dataclass
class Delivered:
    """One agency's outcome in one run."""

    delivered: int = 0
    rejected: int = 0
    failed: int = 0
    dead: int = 0


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential, capped, with full jitter in [0.5, 1.0] of the step (no thundering herd)."""
    step = min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_CAP)
    return step * (0.5 + 0.5 * (rng or random).random())


def due(session: Session, agency: str, limit: int, now: datetime) -> list[Directive]:
    return list(session.execute(
        sa.select(Directive).where(
            Directive.agency == agency, Directive.status == "pending",
            sa.or_(Directive.next_attempt_at.is_(None),  # type: ignore[union-attr]
                   Directive.next_attempt_at <= now))  # type: ignore[operator]
        .order_by(Directive.id).limit(limit)  # type: ignore[arg-type]
    ).scalars())


def deliver_agency(db: sa.Engine, adapter: Adapter, agency_keys: Mapping[str, bytes], *,
                   batch_size: int = 500, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Delivered:
    """Deliver everything due for one agency, batch by batch."""
    outcome = Delivered()
    started = utcnow()
    while True:
        with transaction(db) as session:
            batch = [(d.id, d.directive_id, d.jws) for d in
                     due(session, adapter.agency_id, batch_size, started)]
        if not batch:
            return outcome
        try:
            answers: Sequence[str | DeliveryError] = adapter.deliver([t for _, _, t in batch])
        except DeliveryError as exc:
            answers = [exc] * len(batch)
        with transaction(db) as session:
            _record(session, adapter.agency_id, batch, answers, agency_keys, max_attempts,
                    outcome)


def _record(session: Session, agency: str, batch: Sequence[tuple[int | None, str, str]],
            answers: Sequence[str | DeliveryError], agency_keys: Mapping[str, bytes],
            max_attempts: int, outcome: Delivered) -> None:
    now = utcnow()
    events = []
    for (row_id, directive_id, _), answer in zip(batch, answers, strict=True):
        row = session.get(Directive, row_id)
        if row is None or row.status != "pending":
            continue  # another worker finished it meanwhile
        try:
            if isinstance(answer, DeliveryError):
                raise answer
            document = receipts.verify(answer, agency=agency, directive_id=directive_id,
                                       agency_keys=agency_keys)
        except (DeliveryError, VerificationError) as exc:
            events.extend(_failed(row, exc, now, max_attempts, outcome))
            continue
        session.merge(Receipt(directive_id=directive_id, agency=agency,
                              status=document["status"], jws=answer, at=now))
        row.status = "rejected" if document["status"] == "rejected" else "delivered"
        row.attempts += 1
        row.delivered_at = now
        row.last_error = document.get("detail") if row.status == "rejected" else None
        if row.status == "rejected":
            outcome.rejected += 1
        else:
            outcome.delivered += 1
        events.append(log.event("receipt.recorded", directive_id=directive_id, agency=agency,
                                outcome=document["status"], digest=jws.digest(answer)))
    log.append(session, events)


def _failed(row: Directive, exc: DeliveryError | VerificationError, now: datetime,
            max_attempts: int, outcome: Delivered) -> list[dict[str, object]]:
    row.attempts += 1
    row.last_error = f"{exc.code}: {exc.message}"[:2000]
    events = [log.event("delivery.failed", directive_id=row.directive_id, agency=row.agency,
                        outcome=exc.code, attempt=row.attempts)]
    if row.attempts >= max_attempts:
        row.status = "dead"
        outcome.dead += 1
        events.append(log.event("directive.dead_lettered", directive_id=row.directive_id,
                                agency=row.agency, outcome=exc.code, attempts=row.attempts))
    else:
        row.next_attempt_at = now + backoff(row.attempts)
        outcome.failed += 1
    return events
