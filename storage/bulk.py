"""Many rows in one statement, straight to the database driver, for the hot tables.

SQLAlchemy's Core ``executemany`` builds a parameter dictionary per row and runs every column
type's conversion through it; ``../shared/PERFORMANCE.md`` measures the driver's own
``executemany`` at half of Core's cost per row. Here a statement is compiled once per dialect
and set of columns, with the conversions it needs (each column type's own bind processor, so a
stored value is exactly what Core would have stored), and each row becomes a tuple in the
compiled statement's order (SQLite) or a dictionary (psycopg's named parameters). The call
still goes through the session's connection and transaction. Used where a batch writes
hundreds of rows (audit events, outbox updates, receipts, entry revisions, the simulated
agencies' stores); everything else stays with the ORM or Core.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.engine import Connection, Dialect


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters in the order the SQL takes them
    converted: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, type conversion)
    positional: bool

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        # A comprehension per value cost more than the driver's insert: most columns
        # (strings, integers) need no conversion, so only those that do are touched.
        values = [row[name] for name in self.names]
        for position, convert in self.converted:
            values[position] = convert(values[position])
        return tuple(values)


@lru_cache(maxsize=64)
def _compiled(statement: sa.Insert | sa.Update, dialect: Dialect,
              keys: tuple[str, ...]) -> _Compiled:
    # As Core does for executemany: the first row's keys say which columns are set.
    # for_executemany: no RETURNING of generated ids on PostgreSQL, which nothing here reads
    compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    names = tuple(compiled.positiontup or compiled.binds)
    converts = (compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names)
    converted = tuple((i, c) for i, c in enumerate(converts) if c is not None)
    return _Compiled(str(compiled), names, converted, bool(compiled.positiontup))


def executemany(session: orm.Session | Connection, statement: sa.Insert | sa.Update,
                rows: Sequence[Mapping[str, Any]]) -> None:
    """Run ``statement`` once per row. Every row has the first row's keys: the columns an
    insert or update sets, and the statement's other bound parameters. Columns left out get
    no default here: a column with a Python-side default must be given.

    Raises:
        KeyError: a row lacks one of the statement's parameters.
    """
    if not rows:
        return
    if isinstance(session, orm.Session):
        if session.autoflush:  # as session.execute would: pending ORM changes go first
            session.flush()
        connection = session.connection()
    else:
        connection = session
    plan = _compiled(statement, connection.dialect, tuple(rows[0]))
    values: list[Any] = [plan.values(row) for row in rows]
    if not plan.positional:
        values = [dict(zip(plan.names, value, strict=True)) for value in values]
    connection.exec_driver_sql(plan.sql, values)
