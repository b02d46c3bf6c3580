"""Progress lines on stderr while the benchmark runs, so a run that is stopped still shows
how far each phase got and how fast.

``say`` prints one timestamped line. ``Watch`` polls the home's database every few seconds on a
connection of its own (read-only work, no write lock taken) and prints what ingest, routing and
delivery have done so far; the phase boundaries come from the flows' own progress hook.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

_START = time.perf_counter()
enabled = True


def say(message: str) -> None:
    if enabled:
        print(f"[bench {time.perf_counter() - _START:8.1f}s] {message}", file=sys.stderr,
              flush=True)


class _Bar:
    def __init__(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, total, 0
        self.start = time.perf_counter()

    def advance(self, amount: int) -> None:
        self.done += amount


@contextmanager
def _phase(name: str, total: int) -> Iterator[_Bar]:
    """The reporter for ``interdict.progress``: a line when a flow phase starts and ends."""
    say(f"{name}: {total} to do")
    bar = _Bar(name, total)
    try:
        yield bar
    finally:
        seconds = time.perf_counter() - bar.start
        say(f"{name}: {bar.done} in {seconds:.1f} s ({bar.done / max(seconds, 1e-9):.0f}/s)")


def report_phases() -> None:
    from interdict import progress

    progress.use(_phase)


class Watch:
    """Counts in the home's database, printed every ``every`` seconds until stopped."""

    def __init__(self, database_url: str, label: str, every: float) -> None:
        from interdict.storage.database import normalise_url

        # A plain engine: interdict's own takes SQLite's write lock on every BEGIN.
        self.engine = sa.create_engine(normalise_url(database_url))
        self.label, self.every = label, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.start = time.perf_counter()

    def __enter__(self) -> Watch:
        if enabled and self.every > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        self.engine.dispose()

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                say(f"{self.label}: {self.counts()}")
            except Exception as exc:  # a locked or busy database: try again next time
                say(f"{self.label}: (counts unavailable: {type(exc).__name__})")

    def counts(self) -> str:
        from interdict.storage.models import Directive, EntryRevision

        with self.engine.connect() as conn:
            revisions, routed = conn.execute(sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(
                    sa.case((EntryRevision.routed == sa.true(), 1), else_=0)), 0))
                .select_from(EntryRevision)).one()
            statuses = dict(conn.execute(sa.select(Directive.status, sa.func.count())
                                         .group_by(Directive.status)).all())
        seconds = time.perf_counter() - self.start
        issued = sum(statuses.values())
        done = issued - statuses.get("pending", 0)
        return (f"accepted {revisions}, routed {routed}, directives {issued}, settled {done} "
                f"({done / max(seconds, 1e-9):.0f}/s since start), "
                + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
