"""The driver-level executemany stores exactly what Core's executemany stores, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from interdict.storage import bulk, database
from interdict.storage.models import AuditEvent, Receipt

AT = datetime(2026, 11, 27, 21, 30, 15, 123456, tzinfo=UTC)
RECEIPTS = sa.insert(Receipt.__table__)  # type: ignore[attr-defined]
AUDIT = sa.insert(AuditEvent.__table__)  # type: ignore[attr-defined]
RESTATUS = (sa.update(Receipt.__table__)  # type: ignore[attr-defined]
            .where(Receipt.__table__.c.directive_id == sa.bindparam("key")))  # type: ignore[attr-defined]


def receipts(prefix: str) -> list[dict[str, Any]]:
    # an aware time in another zone is stored as the same instant in UTC
    east = AT.astimezone(timezone(timedelta(hours=8)))
    return [{"directive_id": f"{prefix}-{n}", "agency": "travel", "status": "applied",
             "jws": f"token-{n}-ü", "at": AT if n % 2 else east} for n in range(3)]


def stored(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:  # the values as the database holds them, not as read back
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


def test_inserts_store_what_core_stores(database_url: str) -> None:
    engine = database.engine_for(database_url)
    database.create_schema(engine)
    with database.transaction(engine) as session:
        session.execute(RECEIPTS, receipts("core"))
        bulk.executemany(session, RECEIPTS, receipts("bulk"))
        session.execute(AUDIT, [{"seq": 0, "event": b"{}", "leaf": b"\x00" * 32}])
        bulk.executemany(session, AUDIT, [{"seq": 1, "event": b"{}", "leaf": b"\x00" * 32}])
    rows = stored(engine, "SELECT directive_id, agency, status, jws, at FROM receipt "
                          "ORDER BY directive_id")
    core = [row[1:] for row in rows if row[0].startswith("core")]
    assert core == [row[1:] for row in rows if row[0].startswith("bulk")] and len(core) == 3
    events = stored(engine, "SELECT event, leaf FROM audit_event ORDER BY seq")
    assert [bytes(e) for e in events[0]] == [bytes(e) for e in events[1]]
    with database.reading(engine) as session:  # and the ORM reads it back as it was written
        assert {r.at for r in session.execute(sa.select(Receipt)).scalars()} == {AT}


def test_an_update_sets_the_given_columns_of_the_rows_its_where_names(database_url: str) -> None:
    engine = database.engine_for(database_url)
    database.create_schema(engine)
    later = AT + timedelta(days=1)
    with database.transaction(engine) as session:
        session.execute(RECEIPTS, receipts("r"))
        bulk.executemany(session, RESTATUS, [{"key": "r-0", "status": "duplicate", "at": later},
                                             {"key": "r-2", "status": "rejected", "at": later}])
    with database.reading(engine) as session:
        got = {r.directive_id: (r.status, r.at)
               for r in session.execute(sa.select(Receipt)).scalars()}
    assert got == {"r-0": ("duplicate", later), "r-1": ("applied", AT),
                   "r-2": ("rejected", later)}


def test_a_row_without_a_parameter_the_first_row_had_is_refused(database_url: str) -> None:
    engine = database.engine_for(database_url)
    database.create_schema(engine)
    rows = receipts("x")
    del rows[1]["jws"]
    with pytest.raises(KeyError, match="jws"), database.transaction(engine) as session:
        bulk.executemany(session, RECEIPTS, rows)
    assert stored(engine, "SELECT count(*) FROM receipt") == [(0,)]  # nothing half-written


def test_generated_ids_are_not_returned_to_a_caller_that_never_reads_them() -> None:
    """Compiled for executemany: on PostgreSQL an insert of rows whose ids the database
    assigns carries no RETURNING clause, which would be work on every row for nothing."""
    from sqlalchemy.dialects import postgresql

    from interdict.directives.outbox import _INSERT

    keys = ("directive_id", "agency", "action", "issuer", "entry_id", "revision", "jws",
            "status", "attempts", "next_attempt_at", "last_error", "created_at", "delivered_at")
    sql = bulk._compiled(_INSERT, postgresql.psycopg.dialect(), keys).sql
    assert sql.startswith("INSERT INTO directive") and "RETURNING" not in sql
