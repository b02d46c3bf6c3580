"""The public database: where issuers publish signed entries, and interdict reads them.

It is a contract with issuers' own systems (docs/publishing.md): one table,
``published_entry(seq INTEGER PRIMARY KEY, jws TEXT NOT NULL, published_at TIMESTAMP NOT NULL)``,
``published_at`` in UTC. Anyone may append; interdict reads after its cursor, and trusts
nothing it reads until the signature and the trust store say so. The one write interdict makes
to rows it did not append is erasure after retention (accountability/erasure.py): the copy of
an entry it erased is replaced by the same tombstone, unless settings.json says
``"erase_published": false`` (then the issuer unpublishes).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from interdict.entries.admission import Published
from interdict.storage.database import engine_for
from interdict.storage.types import UTCDateTime, utcnow

metadata = sa.MetaData()
published_entry = sa.Table(
    "published_entry",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("jws", sa.Text, nullable=False),
    sa.Column("published_at", UTCDateTime(), nullable=False),
)


class PublicDatabase:
    """A handle on one public database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = engine_for(url)
        metadata.create_all(self.engine)

    def publish(self, tokens: Sequence[str]) -> list[int]:
        """Append signed entries as they are; return their sequence numbers."""
        now = utcnow()
        seqs = []
        with self.engine.begin() as conn:
            for token in tokens:
                result = conn.execute(published_entry.insert().values(jws=token, published_at=now))
                seqs.append(int(result.inserted_primary_key[0]))
        return seqs

    def publish_bulk(self, tokens: Sequence[str]) -> None:
        """Append many signed entries in one statement (importers, benchmarks)."""
        if tokens:
            now = utcnow()
            with self.engine.begin() as conn:
                conn.execute(published_entry.insert(),
                             [{"jws": token, "published_at": now} for token in tokens])

    def read_after(self, cursor: int, limit: int) -> list[Published]:
        query = (sa.select(published_entry).where(published_entry.c.seq > cursor)
                 .order_by(published_entry.c.seq).limit(limit))
        with self.engine.connect() as conn:
            return [Published(row.seq, row.jws, row.published_at) for row in conn.execute(query)]

    def erase(self, rows: Sequence[tuple[int, str, str]]) -> int:
        """Replace ``(seq, token, tombstone)``: each row that still holds exactly ``token`` at
        ``seq`` gets ``tombstone`` instead. Returns how many rows changed."""
        statement = (published_entry.update()
                     .where(published_entry.c.seq == sa.bindparam("at_seq"),
                            published_entry.c.jws == sa.bindparam("token"))
                     .values(jws=sa.bindparam("tombstone")))
        changed = 0
        with self.engine.begin() as conn:  # a few rows per entry: one statement each
            for seq, token, marker in rows:
                changed += conn.execute(statement, {"at_seq": seq, "token": token,
                                                    "tombstone": marker}).rowcount
        return changed

    def head(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(
                sa.func.max(published_entry.c.seq), 0))).scalar_one())

    def contains(self, token: str) -> bool:
        query = sa.select(published_entry.c.seq).where(published_entry.c.jws == token).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None
