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


def _engine(tmp_path: Path) -> sa.Engine:
    engine = database.engine_for(f"sqlite:///{tmp_path / 'turns.db'}")
    database.create_schema(engine)
    return engine


def test_concurrent_writers_each_commit_and_the_log_stays_in_order(tmp_path: Path) -> None:
    engine = _engine(tmp_path)

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
        with database.reading(engine) as session:
            assert session.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                                   ).scalar_one() == 1
    finally:
        release.set()
        holder.join()
