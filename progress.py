"""Progress of long work, reported to whoever listens (the CLI draws bars on a terminal).

The pipeline calls ``phase``; nothing is drawn unless a front end installed a reporter with
``use``. Kept global rather than passed along because Prefect tasks run in worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Bar(Protocol):
    def advance(self, amount: int) -> None: ...


class _Silent:
    def advance(self, amount: int) -> None:
        pass


_reporter: Callable[[str, int], object] | None = None


def use(reporter: Callable[[str, int], object] | None) -> None:
    """Install a reporter: called with (phase name, total) it returns a context manager
    yielding a Bar."""
    global _reporter
    _reporter = reporter


@contextmanager
def phase(name: str, total: int) -> Iterator[Bar]:
    if _reporter is None or total <= 0:
        yield _Silent()
        return
    with _reporter(name, total) as bar:  # type: ignore[attr-defined]
        yield bar
