"""Delivering the outbox to one agency, and recording what came back.

At-least-once: a directive stays pending until a valid signed receipt is stored; failures are
retried with exponential backoff and jitter, and dead-lettered after the manifest's
``max_attempts``. Exactly-once in effect: the directive (and its id) never changes between
attempts, and agencies apply each id once.

One run, for one agency::

    release leases of dead workers on this machine
    loop: circuit open? stop.  claim a batch (lease, attempt counted, delivery.attempted)
          rate limit  →  adapter.deliver  →  record receipts / failures / dead letters,
                                             and the circuit breaker's count
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.agencies.base import Adapter
from interdict.auditlog import log
from interdict.directives import outbox, receipts, throttle
from interdict.directives.throttle import DeliveryPolicy
from interdict.errors import DeliveryError, VerificationError
from interdict.keys import jws
from interdict.storage.database import transaction
from interdict.storage.models import Directive, Receipt
from interdict.storage.types import utcnow

Clock = Callable[[], datetime]


@dataclass
class Delivered:
    """One agency's outcome in one run."""

    delivered: int = 0
    rejected: int = 0
    flagged: int = 0  # answered: the agency will not act on it (a reason code); never delivered
    failed: int = 0
    dead: int = 0
    attempted: int = 0
    circuit_open: bool = False  # the run stopped (or never started) because of the breaker


def deliver_agency(db: sa.Engine, adapter: Adapter, agency_keys: Mapping[str, bytes],
                   policy: DeliveryPolicy | None = None, *, clock: Clock = utcnow,
                   worker: str | None = None, rng: random.Random | None = None) -> Delivered:
    """Deliver everything due for one agency, batch by batch, until nothing due is left.

    ``clock`` is when "now" is: tests advance it instead of sleeping through backoffs.
    """
    policy = policy or DeliveryPolicy()
    worker = worker or outbox.worker_id()
    agency = adapter.agency_id
    limiter = throttle.limiter_for(agency, policy.rate_per_s)
    outcome = Delivered()
    started = clock()  # due-ness is fixed at the start: a failure now is not retried this run
    with transaction(db) as session:
        released = outbox.release_dead_workers(session, agency, started)
        if released:
            log.append(session, released)
    while True:
        now = clock()
        with transaction(db) as session:
            circuit = throttle.circuit(session, agency)
            if circuit.is_open(now):
                outcome.circuit_open = True
                return outcome
            size = _call_size(circuit, policy, now)
            claimed = outbox.claim(session, agency, worker, size, started,
                                   now + policy.lease, policy.max_attempts)
        outcome.dead += claimed.dead
        if not claimed.rows:
            if claimed.dead:
                continue
            return outcome
        if limiter is not None:
            limiter.acquire(len(claimed.rows))
        answers = _send(adapter, [token for _, _, token in claimed.rows])
        outcome.attempted += len(claimed.rows)
        with transaction(db) as session:
            _record(session, agency, claimed, answers, agency_keys, policy, worker,
                    clock(), outcome, rng)


def _call_size(circuit: throttle.Circuit, policy: DeliveryPolicy, now: datetime) -> int:
    """A probe is one directive; after failures, no more than it takes to reach the breaker's
    threshold, so a failing agency is not sent a whole batch more."""
    if circuit.probing(now):
        return 1
    if circuit.failures:
        return max(1, min(policy.claim_size, policy.breaker_failures - circuit.failures))
    return policy.claim_size


def _send(adapter: Adapter, tokens: Sequence[str]) -> Sequence[str | DeliveryError]:
    try:
        return adapter.deliver(tokens)
    except DeliveryError as exc:  # the whole call failed: every directive in it did
        return [exc] * len(tokens)


@dataclass
class _Row:
    """The delivery state of one outbox row, changed in memory and written back in bulk
    (the hot path: PERFORMANCE.md, no ORM object per directive)."""

    id: int
    directive_id: str
    agency: str
    status: str
    attempts: int
    claimed_by: str | None
    claimed_until: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None

    def values(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "claimed_by": self.claimed_by,
                "claimed_until": self.claimed_until, "next_attempt_at": self.next_attempt_at,
                "delivered_at": self.delivered_at, "last_error": self.last_error}


def _record(session: Session, agency: str, claimed: outbox.Claimed,
            answers: Sequence[str | DeliveryError], agency_keys: Mapping[str, bytes],
            policy: DeliveryPolicy, worker: str, now: datetime, outcome: Delivered,
            rng: random.Random | None) -> None:
    batch = claimed.rows
    rows = {r.id: _Row(*r) for r in session.execute(
        sa.select(Directive.id, Directive.directive_id, Directive.agency, Directive.status,
                  Directive.attempts, Directive.claimed_by, Directive.claimed_until,
                  Directive.next_attempt_at, Directive.delivered_at, Directive.last_error)
        .where(Directive.id.in_([i for i, _, _ in batch]))  # type: ignore[union-attr]
        .with_for_update())}
    events: list[dict[str, Any]] = []
    calls: list[bool] = []
    kept: list[dict[str, Any]] = []
    for (row_id, directive_id, _), answer in zip(batch, answers, strict=True):
        row = rows.get(row_id)
        try:
            if isinstance(answer, DeliveryError):
                raise answer
            document = receipts.verify(answer, agency=agency, directive_id=directive_id,
                                       agency_keys=agency_keys,
                                       action=claimed.actions[row_id])
        except (DeliveryError, VerificationError) as exc:
            if isinstance(exc, VerificationError) and exc.code == receipts.FLAGGED_LIFT \
                    and isinstance(answer, str):  # an answer, a refusal: not retried
                calls.append(True)
                if row is not None and row.status == "pending":
                    events.append(_lift_refused(row, answer, exc, now, outcome))
                continue
            calls.append(False)
            if row is not None and row.status == "pending":
                events.extend(_failed(row, exc, policy, now, outcome, rng))
            continue
        calls.append(True)
        if row is not None and row.status == "pending":  # else another worker recorded it
            events.append(_received(row, answer, document, now, outcome))
            kept.append({"directive_id": directive_id, "agency": agency,
                         "status": document["status"], "jws": answer, "at": now})
    for row in rows.values():
        if row.claimed_by == worker:  # another worker that took over keeps its lease
            row.claimed_by, row.claimed_until = None, None
    if rows:  # rows are locked: writing back what was read changes nothing else
        _write_back(session, rows.values())
    _store_receipts(session, kept)
    events.extend(throttle.record_calls(session, agency, calls, policy, now))
    log.append(session, events)


_WRITE_BACK = (sa.update(Directive.__table__)
               .where(Directive.__table__.c.id == sa.bindparam("row_id")))


def _write_back(session: Session, rows: Iterable[_Row]) -> None:
    """One Core executemany for the batch: the ORM's bulk update by primary key costs several
    times as much per row on this hot path (PERFORMANCE.md)."""
    values = []
    for row in rows:
        value = row.values()
        value["row_id"] = value.pop("id")
        values.append(value)
    session.execute(_WRITE_BACK, values)


def _store_receipts(session: Session, kept: Sequence[dict[str, Any]]) -> None:
    """Insert new receipts; replace an earlier one, except that an "applied" receipt is kept
    when a redelivery (reconcile, dead-letter retry) is answered "duplicate": it is the proof
    the directive was applied, and the new one is in the audit log by digest."""
    if not kept:
        return
    earlier = dict(session.execute(sa.select(Receipt.directive_id, Receipt.status).where(
        Receipt.directive_id.in_([k["directive_id"] for k in kept]))).all())  # type: ignore[attr-defined]
    fresh = [k for k in kept if k["directive_id"] not in earlier]
    replace = [k for k in kept if k["directive_id"] in earlier
               and not (earlier[k["directive_id"]] == "applied" and k["status"] == "duplicate")]
    if fresh:
        session.execute(sa.insert(Receipt.__table__), fresh)
    if replace:
        session.execute(sa.update(Receipt), replace)


def _received(row: _Row, token: str, document: Mapping[str, Any], now: datetime,
              outcome: Delivered) -> dict[str, Any]:
    status = document["status"]
    flag = receipts.flag_of(document)
    # flagged is an answer (no retry) but never "delivered": the agency does not act on it
    row.status = status if status in ("rejected", "flagged") else "delivered"
    row.delivered_at = now
    row.last_error = document.get("detail") if status == "rejected" else None
    if status == "rejected":
        outcome.rejected += 1
    elif flag is not None:
        row.last_error = f"flagged: {flag['code']}"  # the code only; the detail is in the receipt
        outcome.flagged += 1
    else:
        outcome.delivered += 1
    return log.event("receipt.recorded", directive_id=row.directive_id, agency=row.agency,
                     outcome=status, digest=jws.digest(token),
                     flag=flag["code"] if flag else None, erased=document.get("erased"))


def _lift_refused(row: _Row, token: str, exc: VerificationError, now: datetime,
                  outcome: Delivered) -> dict[str, Any]:
    """An agency flagged a lift. A restriction must always be removable, so this is no flag
    but a refusal, recorded as ``rejected``: the lift stays open (``interdict slo`` reports
    it late) until it is sent again, by reconcile (the agency still holds the restriction)
    or ``dead-letter retry``. The receipt is not kept as one (it is invalid); its digest is
    in the event."""
    row.status = "rejected"
    row.delivered_at = now
    row.last_error = f"{exc.code}: {exc.message}"[:2000]
    outcome.rejected += 1
    return log.event("receipt.refused", directive_id=row.directive_id, agency=row.agency,
                     outcome=exc.code, digest=jws.digest(token))


def _failed(row: _Row, exc: DeliveryError | VerificationError, policy: DeliveryPolicy,
            now: datetime, outcome: Delivered,
            rng: random.Random | None) -> list[dict[str, Any]]:
    row.last_error = f"{exc.code}: {exc.message}"[:2000]
    events = [log.event("delivery.failed", directive_id=row.directive_id, agency=row.agency,
                        outcome=exc.code, attempt=row.attempts)]
    if row.attempts >= policy.max_attempts:
        row.status = "dead"
        outcome.dead += 1
        events.append(log.event("directive.dead_lettered", directive_id=row.directive_id,
                                agency=row.agency, outcome=exc.code, attempts=row.attempts))
    else:
        row.next_attempt_at = now + policy.backoff(row.attempts, rng)
        outcome.failed += 1
    return events
