"""The database schema an installation opens with, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from interdict.installation import Installation


def _indexes(engine: sa.Engine, table: str) -> set[str]:
    return {i["name"] for i in sa.inspect(engine).get_indexes(table)}


def test_an_index_added_to_the_model_is_created_on_an_existing_database(
        installation: Installation) -> None:
    """create_all skips tables that exist; an upgraded installation still gets new indexes
    (the outbox claim is quadratic without ix_directive_pending_entry)."""
    with installation.db.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_directive_pending_entry"))
    assert "ix_directive_pending_entry" not in _indexes(installation.db, "directive")

    reopened = Installation(installation.home).db  # what the next process does
    assert "ix_directive_pending_entry" in _indexes(reopened, "directive")
    assert {"ix_directive_outbox", "ix_directive_entry_agency"} <= _indexes(reopened, "directive")
    reopened.dispose()
