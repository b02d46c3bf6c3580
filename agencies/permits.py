"""The permit registry: refuses new permits and suspends existing ones under a permit measure."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from interdict.agencies.simulated import Decision, SimulatedAgency, subject_matches

permit_metadata = sa.MetaData()
permit = sa.Table(
    "permit", permit_metadata,
    sa.Column("permit_id", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),  # business | professional
    sa.Column("holder_identifier", sa.String(260)),  # scheme:value
    sa.Column("holder_name", sa.String(500)),
    sa.Column("status", sa.String(12), nullable=False),  # valid | suspended
    sa.Column("suspended_by", sa.String(260)),  # the entry whose measure suspended it
)


class PermitRegistry(SimulatedAgency):
    name = "permits"

    def _create_domain_tables(self, engine: Engine) -> None:
        permit_metadata.create_all(engine)

    def grant_permit(self, permit_id: str, kind: str, *, identifier: str | None = None,
                     name: str | None = None) -> None:
        """Record a permit the registry issued before interdict (demo and tests seed these)."""
        with self.db.begin() as conn:
            conn.execute(permit.insert().values(permit_id=permit_id, kind=kind,
                                                holder_identifier=identifier, holder_name=name,
                                                status="valid", suspended_by=None))

    def permits_of(self, *, identifier: str | None = None,
                   name: str | None = None) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(permit)).mappings().all()
        return [dict(r) for r in rows if _holder_matches(r, identifier, name)]

    def check_permit(self, *, identifier: str | None = None, name: str | None = None,
                     kind: str = "business") -> Decision:
        """May this applicant be granted a new permit of ``kind``?"""
        found = [r for r in self.active_restrictions(identifier=identifier, name=name)
                 if any(m["type"] == f"permit.{kind}" for m in r["measures"])]
        return Decision(allowed=not found, restrictions=found)

    def _on_impose(self, conn: Connection, entry_key: str, document: dict[str, Any]) -> None:
        kinds = {m["type"].removeprefix("permit.") for m in document["measures"]
                 if m["type"].startswith("permit.")}
        subject = document.get("subject", {})
        valid = self._valid_permits(conn)
        for row in list(valid):
            if row["kind"] in kinds and subject_matches(subject, row["holder_identifier"],
                                                         row["holder_name"]):
                conn.execute(permit.update().where(permit.c.permit_id == row["permit_id"])
                             .values(status="suspended", suspended_by=entry_key))
                valid.remove(row)

    def _on_lift(self, conn: Connection, entry_key: str) -> None:
        conn.execute(permit.update().where(permit.c.suspended_by == entry_key)
                     .values(status="valid", suspended_by=None))
        self._valid = None  # reinstated permits are valid again: read them afresh

    _valid: tuple[Connection, list[Any]] | None = None

    def _valid_permits(self, conn: Connection) -> list[Any]:
        """The valid permits, read once per delivered batch (one transaction, one
        connection) rather than once per directive, and kept up to date as the batch
        suspends them."""
        if self._valid is None or self._valid[0] is not conn:
            rows = conn.execute(sa.select(permit).where(permit.c.status == "valid")).mappings()
            self._valid = (conn, list(rows))
        return self._valid[1]


def _holder_matches(row: Any, identifier: str | None, name: str | None) -> bool:
    if identifier and row["holder_identifier"] == identifier:
        return True
    return bool(name and row["holder_name"]
                and " ".join(name.casefold().split()) == " ".join(
                    row["holder_name"].casefold().split()))
