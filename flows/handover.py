"""Delivery alongside routing: each agency's delivery starts on the first batch routing
stores, not after the last.

Routing is the engine's work (and its signing worker's), delivery mostly the agencies': one
after the other, the agencies wait while the engine routes. Alongside, an agency applies the
first batches while the engine routes the next. On SQLite the two take turns at the file's
one writer, a transaction at a time (storage/database.py); on PostgreSQL they do not wait
for each other at all, as separate dispatch workers do not (the outbox's claims).

This is within one process: routing tells the deliveries following it that a batch is stored
(``routed``) and when it has ended (leaving ``routing``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from interdict.directives import Delivered

_CHANGED = threading.Condition()
_ROUTING: Counter[str] = Counter()  # routings under way, by home
_BATCHES: Counter[str] = Counter()  # batches routed, by home (only ever compared for change)


@contextmanager
def routing(home: str) -> Iterator[None]:
    """Routing for ``home`` is under way in this process while in this block."""
    with _CHANGED:
        _ROUTING[home] += 1
    try:
        yield
    finally:
        with _CHANGED:
            _ROUTING[home] -= 1
            _CHANGED.notify_all()


def routed(home: str) -> None:
    """A batch for ``home`` is stored: deliveries following its routing look again."""
    with _CHANGED:
        _BATCHES[home] += 1
        _CHANGED.notify_all()


def follow(home: str, deliver: Callable[[], Delivered]) -> Delivered:
    """Deliver what is due now, and again after each batch routing stores, until a pass that
    started after routing ended (or an open circuit breaker) stops it; the passes' outcomes
    added up."""
    total = Delivered()
    while True:
        with _CHANGED:
            going, seen = _ROUTING[home] > 0, _BATCHES[home]
        total.add(deliver())
        if not going or total.circuit_open:
            return total
        _wait_for_more(home, seen)


def _wait_for_more(home: str, seen: int) -> None:
    """Until a batch after the ``seen``-th is stored, or routing has ended."""
    with _CHANGED:
        _CHANGED.wait_for(lambda: _BATCHES[home] != seen or _ROUTING[home] <= 0)
