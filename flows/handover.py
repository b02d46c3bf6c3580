"""Delivery alongside routing: each agency's delivery starts on the first batch routing
stores, not after the last.

Routing is the engine's work (and its signing worker's), delivery mostly the agencies': one
after the other, the agencies wait while the engine routes. Alongside, an agency applies the
first batches while the engine routes the next. On SQLite the two take turns at the file's
one writer, a transaction at a time (storage/database.py); on PostgreSQL they wait for each
other only at the audit log's head, which every transaction that appends events holds until
it commits, as separate dispatch workers do.

This is within one process: the delivery tasks run on threads of the flow's own process
(Prefect's thread pool task runner, which ``sync`` and ``dispatch`` name). Routing tells the
deliveries following it that a batch is stored (``routed``) and when it has ended (leaving
``routing``); each delivery then makes one last pass.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from interdict.directives import Delivered

_CHANGED = threading.Condition()
_NUMBERS = itertools.count(1)


@dataclass
class _Routing:
    home: str
    batches: int = 0  # stored so far (only ever compared for change)
    ended: bool = False


_UNDER_WAY: dict[int, _Routing] = {}  # by number


@contextmanager
def routing(home: str) -> Iterator[int]:
    """Routing for ``home`` is under way while in this block; the number it gives names this
    routing to the deliveries that follow it."""
    number, under_way = next(_NUMBERS), _Routing(home)
    with _CHANGED:
        _UNDER_WAY[number] = under_way
    try:
        yield number
    finally:
        with _CHANGED:
            under_way.ended = True
            del _UNDER_WAY[number]
            _CHANGED.notify_all()


def routed(home: str) -> None:
    """A batch for ``home`` is stored: deliveries following its routing look again."""
    with _CHANGED:
        for under_way in _UNDER_WAY.values():
            if under_way.home == home:
                under_way.batches += 1
        _CHANGED.notify_all()


def follow(number: int, deliver: Callable[[], Delivered]) -> Delivered:
    """Deliver what is due now, and again after each batch the routing ``number`` stores,
    until a pass that started after that routing ended (or an open circuit breaker) stops it;
    the passes' outcomes added up. A routing that is not (or no longer) under way gets one
    pass."""
    with _CHANGED:
        under_way = _UNDER_WAY.get(number)
    total = Delivered()
    while True:
        with _CHANGED:
            going = under_way is not None and not under_way.ended
            seen = under_way.batches if under_way is not None else 0
        total.add(deliver())
        if not going or total.circuit_open:
            return total
        assert under_way is not None
        _wait_for_more(under_way, seen)


def _wait_for_more(under_way: _Routing, seen: int) -> None:
    """Until a batch after the ``seen``-th is stored, or the routing has ended."""
    with _CHANGED:
        _CHANGED.wait_for(lambda: under_way.batches != seen or under_way.ended)
