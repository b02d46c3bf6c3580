"""Threads of one process writing to one SQLite file take turns (storage/database.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from interdict.auditlog import log
from interdict.storage import database
from interdict.storage.models import AuditEvent


def _engine(tmp_path: Path, *, busy_timeout_ms: int | None = None) -> sa.Engine:
    engine = database.engine_for(f"sqlite:///{tmp_path / 'turns.db'}")
    if busy_timeout_ms is not None:  # before the first connection is made
        sa.event.listen(engine, "connect", lambda dbapi_connection, _: dbapi_connection
                        .execute(f"PRAGMA busy_timeout={busy_timeout_ms}"))
    database.create_schema(engine)
    return engine


def test_concurrent_writers_each_commit_and_the_log_stays_in_order(tmp_path: Path) -> None:
    """With SQLite's busy timeout at 0, a writer that found the file locked would fail with
    "database is locked": every thread gets its turn before it begins instead."""
    engine = _engine(tmp_path, busy_timeout_ms=0)

    def write(worker: int) -> None:
        for n in range(25):
            with database.transaction(engine) as session:
                log.append(session, [log.event("test.turn", worker=worker, n=n)])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    with database.reading(engine) as session:
        seqs = list(session.execute(sa.select(AuditEvent.seq).order_by(AuditEvent.seq))
                    .scalars())
    assert seqs == list(range(100))  # no lost append, no seq taken twice


def test_a_turn_held_too_long_falls_back_to_sqlites_own_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread that holds the turn without writing (a bug, or a stuck caller) delays the
    others by the turn's timeout, then they write under SQLite's lock as before."""
    engine = _engine(tmp_path)
    monkeypatch.setattr(database, "_TURN_TIMEOUT_S", 0.2)
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with database._one_writer(engine):
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(30)
    try:
        with database.transaction(engine) as session:
            log.append(session, [log.event("test.turn")])
        assert holder.is_alive()  # written while the turn was still held
        with database.reading(engine) as session:
            assert session.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                                   ).scalar_one() == 1
    finally:
        release.set()
        holder.join()
