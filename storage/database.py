"""Connecting to the operational database: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.schema import CreateIndex
from sqlmodel import Session, SQLModel

from interdict.errors import ConfigError
from interdict.storage import models  # noqa: F401  (registers the tables on SQLModel.metadata)

READ_ONLY = "interdict_read_only"  # execution option of reading() sessions


def normalise_url(url: str) -> str:
    """Accept the plain ``postgresql://`` form people copy from psql and use psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (status, agency queries) run while a sync writes; NORMAL is durable in
    # WAL mode at commit boundaries, which is all the outbox needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Copy the WAL back into the database every 8,000 pages (32 MB) rather than 1,000: a sync
    # rewrites the same index pages batch after batch, and a page changed many times between
    # two checkpoints is copied once (a 20,000-entry sync about 5 % faster; docs/performance.md).
    cursor.execute("PRAGMA wal_autocheckpoint=8000")
    cursor.close()
    # Let SQLAlchemy, not pysqlite, open transactions (see _begin_immediate).
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Any) -> None:
    # Every transaction takes the write lock up front: a deferred one that reads the audit head
    # and then writes could fail with SQLITE_BUSY when another thread committed in between.
    # A reading() session only reads: a deferred BEGIN gives it a snapshot (WAL) and no lock.
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _json_text(value: Any) -> str:
    # JSON columns (agency stores' directive documents, manifests) with orjson: the stdlib
    # encoder was a tenth of a simulated agency's work per directive. Non-string keys are
    # written as strings, as json.dumps writes them.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")


@lru_cache(maxsize=32)
def engine_for(url: str) -> Engine:
    """One pooled engine per URL per process."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                                  json_serializer=_json_text)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _begin_immediate)
    elif url.startswith("postgresql"):
        engine = sa.create_engine(url, pool_pre_ping=True, json_serializer=_json_text)
    else:
        raise ConfigError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://",
                          code="database.url")
    return engine


def create_schema(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)
    _add_missing_indexes(engine)


def _add_missing_indexes(engine: Engine) -> None:
    """``create_all`` skips a table that exists, and with it any index added to the model
    since (the outbox claim depends on them): create those, tolerating a racing process."""
    inspector = sa.inspect(engine)
    missing = []
    for table in SQLModel.metadata.sorted_tables:
        have = {i["name"] for i in inspector.get_indexes(table.name)}
        missing += [index for index in table.indexes if index.name not in have]
    if missing:
        with engine.begin() as conn:
            for index in missing:
                conn.execute(CreateIndex(index, if_not_exists=True))


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A session that only reads and takes no write lock (on SQLite, where every
    transaction() takes it up front): for long scans a writer must not wait on. It sees one
    snapshot on SQLite, committed rows as of each statement on PostgreSQL; never write in it."""
    with Session(engine.execution_options(**{READ_ONLY: True}),
                 expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together at the end, or not at all."""
    with _one_writer(engine), Session(engine, expire_on_commit=False) as session, \
            session.begin():
        yield session


#: how long a thread waits for its turn at a SQLite file before it tries anyway, and SQLite's
#: own busy timeout (60 s, engine_for) decides: the same failure as without the turn
_TURN_TIMEOUT_S = 60.0
_WRITERS: dict[str, threading.RLock] = {}
_WRITERS_GUARD = threading.Lock()


@contextmanager
def _one_writer(engine: Engine) -> Iterator[None]:
    """On SQLite, threads of this process take turns at the file's single write lock here.

    SQLite's busy handler makes a thread that finds the lock taken sleep and poll (1, 2, 5,
    10 ms and longer), so concurrent delivery threads spent part of each hand-over asleep
    with the lock free; a lock in the process wakes the next writer as soon as the last one
    commits. Other processes still meet SQLite's lock and busy timeout. Re-entrant: a
    thread's nested transaction (on another connection) meets SQLite's lock as before.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    key = str(engine.url)
    with _WRITERS_GUARD:
        turn = _WRITERS.setdefault(key, threading.RLock())
    got = turn.acquire(timeout=_TURN_TIMEOUT_S)
    try:
        yield
    finally:
        if got:
            turn.release()
