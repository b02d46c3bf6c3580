"""Delivering the outbox to one agency, and recording what came back.

At-least-once: a directive stays pending until a valid signed receipt is stored; failures are
retried with exponential backoff and jitter, and dead-lettered after the manifest's
``max_attempts``. Exactly-once in effect: the directive (and its id) never changes between
attempts, and agencies apply each id once.

One run, for one agency::

    release leases of dead workers on this machine
    loop: circuit open? stop.  claim a batch (lease, attempt counted, delivery.attempted)
          rate limit  →  adapter.deliver  →  verify the receipts
          all answered and valid? claim and send the next batch now, while
          recording receipts / failures / dead letters, and the circuit breaker's count
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.agencies.base import Adapter
from interdict.auditlog import log
from interdict.directives import outbox, receipts, throttle
from interdict.directives.throttle import DeliveryPolicy
from interdict.errors import DeliveryError, VerificationError
from interdict.keys import jws, offload
from interdict.storage import bulk
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

    def add(self, later: Delivered) -> None:
        """Count a later run's outcome in this one; the breaker is as the later run left it."""
        for count in fields(self):
            if count.name != "circuit_open":
                setattr(self, count.name, getattr(self, count.name) + getattr(later, count.name))
        self.circuit_open = later.circuit_open


def deliver_agency(db: sa.Engine, adapter: Adapter, agency_keys: Mapping[str, bytes],
                   policy: DeliveryPolicy | None = None, *, clock: Clock = utcnow,
                   worker: str | None = None, rng: random.Random | None = None) -> Delivered:
    """Deliver everything due for one agency, batch by batch, until nothing due is left.

    After a batch the agency answered in full with receipts that verify, the next one is
    claimed and sent before the last is recorded, so the agency applies it while interdict
    writes down the last (the two took turns). After any failure, nothing more is sent until
    the failure is recorded and the circuit breaker has counted it (``_call_size``).

    ``clock`` is when "now" is: tests advance it instead of sleeping through backoffs.
    """
    policy = policy or DeliveryPolicy()
    run = _Run(db, adapter, agency_keys, worker or outbox.worker_id(), policy,
               throttle.limiter_for(adapter.agency_id, policy.rate_per_s), clock, rng)
    with transaction(db) as session:
        released = outbox.release_dead_workers(session, run.agency, run.started)
        if released:
            log.append(session, released)
    flight = run.next()
    while flight is not None:
        checked = run.check(flight)
        following = None
        try:
            if all(c.error is None for c in checked):
                following = run.next()
        finally:  # the answers in hand are recorded even if claiming the next batch failed
            run.record(flight, checked, in_flight=following)
        # recording may have unblocked rows (a lift behind the impose just delivered)
        flight = following if following is not None else run.next()
    return run.outcome


@dataclass
class _InFlight:
    """A claimed batch whose call to the agency is under way."""

    claimed: outbox.Claimed
    answers: Future[_Answers]


@dataclass
class _Run:
    """One agency's delivery run: who delivers, under which policy, and its outcome."""

    db: sa.Engine
    adapter: Adapter
    agency_keys: Mapping[str, bytes]
    worker: str
    policy: DeliveryPolicy
    limiter: throttle.RateLimiter | None
    clock: Clock
    rng: random.Random | None
    outcome: Delivered = field(default_factory=Delivered)

    def __post_init__(self) -> None:
        self.agency = self.adapter.agency_id
        # due-ness is fixed at the start: a failure now is not retried this run
        self.started = self.clock()

    def next(self) -> _InFlight | None:
        """Claim the next batch and start sending it; None when nothing due is left or the
        circuit breaker is open (``outcome.circuit_open``)."""
        while True:
            now = self.clock()
            with transaction(self.db) as session:
                circuit = throttle.circuit(session, self.agency)
                self.outcome.circuit_open = circuit.is_open(now)
                if self.outcome.circuit_open:
                    return None
                claimed = outbox.claim(session, self.agency, self.worker,
                                       _call_size(circuit, self.policy, now), self.started,
                                       now + self.policy.lease, self.policy.max_attempts)
            self.outcome.dead += claimed.dead
            if claimed.rows:
                break
            if not claimed.dead:
                return None
        if self.limiter is not None:
            self.limiter.acquire(len(claimed.rows))
        self.outcome.attempted += len(claimed.rows)
        return _InFlight(claimed, _start_send(self.adapter,
                                              [token for _, _, token in claimed.rows],
                                              self.agency_keys))

    def check(self, flight: _InFlight) -> list[_Checked]:
        answers, verified = flight.answers.result()
        return _checked(self.agency, flight.claimed, answers, self.agency_keys, verified)

    def record(self, flight: _InFlight, checked: Sequence[_Checked], *,
               in_flight: _InFlight | None = None) -> None:
        """Record a batch's answers. Should that fail with the next batch already sent, its
        answers are recorded too if they can be: otherwise both batches stay leased until
        their leases end and go out again (answered ``duplicate`` where applied)."""
        try:
            with transaction(self.db) as session:
                _record(session, self.agency, flight.claimed, checked, self.policy,
                        self.worker, self.clock(), self.outcome, self.rng)
        except BaseException:
            if in_flight is not None:
                with contextlib.suppress(Exception):  # the first error is the one to report
                    self.record(in_flight, self.check(in_flight))
            raise


#: an agency's answers to a batch, and which of its receipts' signatures a worker process
#: has verified already (keys/offload.py)
_Answers = tuple[Sequence[str | DeliveryError], offload.Verified]


def _start_send(adapter: Adapter, tokens: Sequence[str],
                agency_keys: Mapping[str, bytes]) -> Future[_Answers]:
    """Call the agency in a thread of its own, which then has the receipts' signatures checked
    in a worker process while the run records the last batch. A daemon thread: a Ctrl-C while
    it waits on an unresponsive agency stops the run at once instead of at the call's last
    timeout, and the batch, leased and unanswered, goes out again after its lease."""
    answers: Future[_Answers] = Future()

    def call() -> None:
        try:
            sent = _send(adapter, tokens)
            receipts_in = [a for a in sent if isinstance(a, str)]
            answers.set_result((sent, offload.check_elsewhere(
                receipts_in, jws.TYP_RECEIPT, agency_keys).result()))
        except BaseException as exc:  # reaches the run through answers.result()
            answers.set_exception(exc)

    threading.Thread(target=call, name=f"deliver-{adapter.agency_id}", daemon=True).start()
    return answers


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


@dataclass(frozen=True)
class _Checked:
    """One answer, checked: the agency's receipt and its verified payload, or why it does not
    count (a failed call, or a receipt that did not verify)."""

    answer: str | DeliveryError
    document: dict[str, Any] | None = None
    error: DeliveryError | VerificationError | None = None


def _checked(agency: str, claimed: outbox.Claimed, answers: Sequence[str | DeliveryError],
             agency_keys: Mapping[str, bytes],
             verified: offload.Verified = offload.NOTHING) -> list[_Checked]:
    """Receipts are verified before the transaction that records them opens: on SQLite the
    transaction holds the file's only write lock, which the other agencies' deliveries wait
    for, and the signature checks are most of a batch's work."""
    checked = []
    for (row_id, directive_id, _), answer in zip(claimed.rows, answers, strict=True):
        if isinstance(answer, DeliveryError):
            checked.append(_Checked(answer, error=answer))
            continue
        try:
            document = receipts.verify(answer, agency=agency, directive_id=directive_id,
                                       agency_keys=agency_keys,
                                       action=claimed.actions[row_id], verified=verified)
        except VerificationError as exc:
            checked.append(_Checked(answer, error=exc))
            continue
        checked.append(_Checked(answer, document))
    return checked


def _record(session: Session, agency: str, claimed: outbox.Claimed,
            checked: Sequence[_Checked], policy: DeliveryPolicy, worker: str, now: datetime,
            outcome: Delivered, rng: random.Random | None) -> None:
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
    for (row_id, directive_id, _), check in zip(batch, checked, strict=True):
        row = rows.get(row_id)
        answer, exc = check.answer, check.error
        if exc is not None:
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
        assert isinstance(answer, str) and check.document is not None
        calls.append(True)
        if row is not None and row.status == "pending":  # else another worker recorded it
            events.append(_received(row, answer, check.document, now, outcome))
            kept.append({"directive_id": directive_id, "agency": agency,
                         "status": check.document["status"], "jws": answer, "at": now})
    for row in rows.values():
        if row.claimed_by == worker:  # another worker that took over keeps its lease
            row.claimed_by, row.claimed_until = None, None
    if rows:  # rows are locked: writing back what was read changes nothing else
        _write_back(session, rows.values())
    _store_receipts(session, kept)
    events.extend(throttle.record_calls(session, agency, calls, policy, now))
    log.append(session, events)


_INSERT_RECEIPT = sa.insert(Receipt.__table__)  # type: ignore[attr-defined]
_WRITE_BACK = (sa.update(Directive.__table__)
               .where(Directive.__table__.c.id == sa.bindparam("row_id")))


def _write_back(session: Session, rows: Iterable[_Row]) -> None:
    """One executemany for the batch, straight to the driver (storage/bulk.py): the ORM's
    bulk update by primary key costs several times as much per row (PERFORMANCE.md)."""
    values = []
    for row in rows:
        value = row.values()
        value["row_id"] = value.pop("id")
        values.append(value)
    bulk.executemany(session, _WRITE_BACK, values)


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
    bulk.executemany(session, _INSERT_RECEIPT, fresh)
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
