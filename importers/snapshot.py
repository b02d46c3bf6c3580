"""A list snapshot as the importers read it, and the entries it becomes. Pure; no database.

A parser (``un_xml``, ``us_csl``) turns one published file into a ``Snapshot``: when the
publisher generated it, and one ``Record`` per listing, keyed by the publisher's stable record
id. A record's ``content`` is everything of the entry that comes from the list (subject,
measures, legal basis, reason, listing date, redress, provenance); its ``gate`` is the entry
gate's decision and notice exemption the list implies (derived from the content, so left out
of the digest); ``entry`` adds what comes from this import (the issuer, revision, op, dates,
the file it was read from, and the assessment, which names this import: a renewal is an
extension and needs a new one).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from interdict import schemas
from interdict.importers.text import limit
from interdict.keys.jws import canonical_json

ENTRY_SCHEMA = schemas.document_schema("entry", 2)
TRAVEL = ("travel.air", "travel.rail", "travel.sea")


@dataclass(frozen=True)
class Record:
    record_id: str  # the publisher's stable id: the entry is ``<issuer>/<record_id>``
    content: dict[str, Any]
    ends_at: datetime | None = None  # the end the publisher itself gives the listing, if any
    problem: str | None = None  # why this record cannot become an entry, if it cannot
    gate: dict[str, Any] = field(default_factory=dict)  # decision, notice_exemption

    @property
    def digest(self) -> str:
        """Names this record's content: a re-import amends an entry only when it changes."""
        ends = None if self.ends_at is None else iso(self.ends_at)
        return hashlib.sha256(canonical_json({"content": self.content, "ends_at": ends})
                              ).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    source: str  # un-sc | us-csl
    file: str  # the file's name, as provenance
    sha256: str  # of the file's bytes
    generated_at: datetime
    publisher: str
    instrument: str  # what a revocation names as its legal basis
    records: dict[str, Record] = field(default_factory=dict)

    @staticmethod
    def file_facts(path: Path, data: bytes) -> tuple[str, str]:
        return path.name, hashlib.sha256(data).hexdigest()


def iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def day(text: str) -> str:
    """A list's ``YYYY-MM-DD`` as a timestamp at midnight UTC."""
    return f"{text[:10]}T00:00:00Z"


def entry(issuer: str, snapshot: Snapshot, record: Record, *, op: str, revision: int,
          now: datetime, valid_for: timedelta) -> dict[str, Any]:
    """The impose or amend an import publishes for ``record``.

    It takes effect now and lasts ``valid_for`` (the lists give no end), or until the
    publisher's own end date when that comes first; a later import renews it.
    """
    expires = now + valid_for
    if record.ends_at is not None:
        expires = min(expires, record.ends_at)
    return {"schema": ENTRY_SCHEMA, "entry_id": f"{issuer}/{record.record_id}",
            "revision": revision, "op": op, "issuer": issuer, **record.content,
            "source": {**record.content["source"], "file": snapshot.file,
                       "generated_at": iso(snapshot.generated_at)},
            "effective_from": iso(now), "expires_at": iso(expires), **record.gate,
            "assessment": assessment(snapshot, record, now)}


def assessment(snapshot: Snapshot, record: Record, now: datetime) -> str:
    """What an imported entry says for the individual assessment: it is the listing body's,
    and this import confirmed the listing (so each import's statement is new)."""
    decision = record.gate.get("decision", {})
    return limit(
        "The individual assessment is the listing body's: "
        f"{decision.get('authority', snapshot.publisher)} listed {record.record_id} (decision "
        f"{decision.get('reference', record.record_id)}), and an authority implementing the "
        f"{snapshot.instrument} applies its measures as listed. Confirmed on {snapshot.file}, "
        f"generated {iso(snapshot.generated_at)}, by the import of {iso(now)}.", 2000)


def revocation(issuer: str, snapshot: Snapshot, record_id: str, *, revision: int,
               now: datetime, why: str) -> dict[str, Any]:
    """The revoke an import publishes when a record left the list (or the list ended it)."""
    return {"schema": ENTRY_SCHEMA, "entry_id": f"{issuer}/{record_id}", "revision": revision,
            "op": "revoke", "issuer": issuer,
            "legal_basis": {"instrument": snapshot.instrument, "decision": record_id},
            "reason": why, "effective_from": iso(now),
            "source": {"publisher": snapshot.publisher, "record_id": record_id,
                       "file": snapshot.file, "generated_at": iso(snapshot.generated_at)}}


def check(document: dict[str, Any]) -> str | None:
    """The first schema problem of a built entry, or None when it is valid."""
    found = schemas.problems("entry", document, 2)
    return str(found[0]) if found else None
