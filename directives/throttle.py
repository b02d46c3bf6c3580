"""How hard delivery pushes one agency: retry timing, leases, a rate limit, a circuit breaker.

Each is set per agency in its manifest ``settings`` and enforced here, in interdict's own code:
Prefect's concurrency limits cost about a second per task (PERFORMANCE.md). The circuit
breaker's state is a row per agency in the operational database, so every worker and every
later run sees it:

    closed ──(breaker_failures consecutive failures)──▶ open
    open ──(breaker_cooldown_s passed)──▶ half-open: one directive is sent as a probe
    half-open ──probe answered with a valid receipt──▶ closed; ──probe failed──▶ open again
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from interdict.auditlog import log
from interdict.storage.models import DeliveryCircuit

DEFAULT_LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class DeliveryPolicy:
    """One agency's delivery settings, read from its manifest ``settings``."""

    batch_size: int = 500
    max_attempts: int = 8
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_cap: timedelta = timedelta(hours=1)
    lease: timedelta = DEFAULT_LEASE
    rate_per_s: float | None = None
    breaker_failures: int = 5
    breaker_cooldown: timedelta = timedelta(seconds=60)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DeliveryPolicy:
        batch = int(settings.get("batch_size", cls.batch_size))
        # A lease must outlast the slowest batch, or a second worker would send it again
        # (harmless, the agency answers "duplicate", but wasted): every call may time out.
        slowest = timedelta(seconds=2 * batch * float(settings.get("timeout_s", 0)))
        lease = settings.get("lease_s")
        return cls(
            batch_size=batch,
            max_attempts=int(settings.get("max_attempts", cls.max_attempts)),
            backoff_base=_seconds(settings, "backoff_base_s", cls.backoff_base),
            backoff_cap=_seconds(settings, "backoff_cap_s", cls.backoff_cap),
            lease=timedelta(seconds=float(lease)) if lease else max(DEFAULT_LEASE, slowest),
            rate_per_s=float(settings["rate_per_s"]) if settings.get("rate_per_s") else None,
            breaker_failures=int(settings.get("breaker_failures", cls.breaker_failures)),
            breaker_cooldown=_seconds(settings, "breaker_cooldown_s", cls.breaker_cooldown),
        )

    def backoff(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """Exponential and capped, with jitter in [0.5, 1.0] of the step (no thundering herd)."""
        step = min(self.backoff_base * (2 ** min(max(attempts - 1, 0), 40)), self.backoff_cap)
        return step * (0.5 + 0.5 * (rng or random).random())

    @property
    def claim_size(self) -> int:
        """How many directives one call carries: a batch, or one second's worth when rate
        limited, so the limiter paces calls instead of letting one burst through."""
        if self.rate_per_s is None:
            return self.batch_size
        return max(1, min(self.batch_size, math.floor(self.rate_per_s)))


def _seconds(settings: Mapping[str, Any], key: str, default: timedelta) -> timedelta:
    value = settings.get(key)
    return timedelta(seconds=float(value)) if value is not None else default


# -- rate limit ---------------------------------------------------------------------------

class RateLimiter:
    """A token bucket holding at most one second of tokens; ``acquire`` sleeps off a debt."""

    def __init__(self, rate_per_s: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate_per_s
        self.capacity = max(1.0, rate_per_s)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self, n: int) -> float:
        """Take ``n`` tokens, sleeping until they are earned; return the seconds slept."""
        with self._lock:  # reserve under the lock, sleep outside it
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait:
            self._sleep(wait)
        return wait


_limiters: dict[tuple[str, float], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(agency: str, rate_per_s: float | None) -> RateLimiter | None:
    """One limiter per agency per process, shared by every run in it (e.g. under ``serve``)."""
    if rate_per_s is None:
        return None
    with _limiters_lock:
        return _limiters.setdefault((agency, rate_per_s), RateLimiter(rate_per_s))


# -- circuit breaker ----------------------------------------------------------------------

@dataclass(frozen=True)
class Circuit:
    failures: int
    open_until: datetime | None

    def is_open(self, now: datetime) -> bool:
        return self.open_until is not None and now < self.open_until

    def probing(self, now: datetime) -> bool:
        """The cooldown passed: the next call is a probe of one directive."""
        return self.open_until is not None and now >= self.open_until


def circuit(session: Session, agency: str) -> Circuit:
    row = session.get(DeliveryCircuit, agency)
    return Circuit(row.failures, row.open_until) if row else Circuit(0, None)


def _locked_row(session: Session, agency: str) -> DeliveryCircuit:
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" \
        else sqlite.insert
    session.execute(insert(DeliveryCircuit).values(agency=agency, failures=0)
                    .on_conflict_do_nothing())
    return session.execute(sa.select(DeliveryCircuit).where(DeliveryCircuit.agency == agency)
                           .with_for_update()).scalar_one()


def record_calls(session: Session, agency: str, succeeded: Sequence[bool],
                 policy: DeliveryPolicy, now: datetime) -> list[dict[str, Any]]:
    """Count consecutive failures in answer order; open or close the circuit; audit it.

    A valid receipt (even ``rejected``) is a success: the agency is up and answering."""
    row = _locked_row(session, agency)
    was_tripped = row.open_until is not None
    for ok in succeeded:
        row.failures = 0 if ok else row.failures + 1
    events = []
    if row.failures >= policy.breaker_failures:
        row.open_until = now + policy.breaker_cooldown
        events.append(log.event("circuit.opened", agency=agency, failures=row.failures,
                                until=row.open_until.isoformat(),
                                outcome="probe_failed" if was_tripped else "tripped"))
    elif was_tripped:
        row.open_until = None
        events.append(log.event("circuit.closed", agency=agency))
    session.add(row)
    return events


def reset(session: Session, agency: str, *, actor: str, reason: str) -> list[dict[str, Any]]:
    """Close an agency's circuit now (an operator retrying says the agency is back)."""
    row = session.get(DeliveryCircuit, agency)
    if row is None or (row.open_until is None and row.failures == 0):
        return []
    tripped = row.open_until is not None
    row.failures, row.open_until = 0, None
    session.add(row)
    return [log.event("circuit.closed", actor=actor, agency=agency, outcome=reason)] \
        if tripped else []
