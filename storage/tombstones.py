"""Tombstones: what replaces a document once its personal data is erased after retention.

A tombstone is the canonical JSON of a small object (schemas/tombstone.v1.json)::

    {"digest": "sha256:…", "erased_at": "…Z", "kept": {…}, "kind": "directive",
     "reason": "retention", "seq": 1234, "tombstone": "interdict/tombstone/v1"}

It sits in the very column the document was in (``entry_revision.jws``, ``directive.jws``,
``receipt.jws``, ``quarantine.raw``, the public database's ``published_entry.jws``), so no
table changes shape and every reader of those columns meets it where it met the document. A
JWS compact serialization is base64url and dots, so it never starts with ``{``: a stored JWS
and a tombstone cannot be confused (``NOT LIKE '{%'`` in SQL). Raw quarantined bytes can be
anything, so there :func:`read` also checks the ``tombstone`` member.

``kept`` holds the non-personal facts readers still need after erasure (a lift directive's
``effective_from`` and a receipt's signed ``at`` and ``status`` keep lift latency measurable; a
receipt's ``action`` and a flag's code, ``flag_code``, keep flags countable, never the detail);
``seq`` is the ``document.erased`` audit event that records the erasure, when there is one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from interdict.keys.jws import canonical_json

SCHEMA = "interdict/tombstone/v1"
_START = "{"


def make(*, kind: str, digest: str, erased_at: datetime, reason: str,
         seq: int | None = None, kept: dict[str, Any] | None = None) -> str:
    marker: dict[str, Any] = {"tombstone": SCHEMA, "kind": kind, "digest": digest,
                              "erased_at": erased_at.isoformat().replace("+00:00", "Z"),
                              "reason": reason, "kept": kept or {}}
    if seq is not None:
        marker["seq"] = seq
    return canonical_json(marker).decode("ascii")


def read(value: str | bytes | memoryview | None) -> dict[str, Any] | None:
    """The tombstone ``value`` is, or None when it is a document (or nothing)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")
    if not text.startswith(_START):
        return None
    try:
        marker = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(marker, dict) and marker.get("tombstone") == SCHEMA:
        return marker
    return None


def is_tombstone(value: str | bytes | memoryview | None) -> bool:
    return read(value) is not None


def erased(column: Any) -> Any:
    """SQL: the JWS column holds a tombstone (a JWS never starts with ``{``)."""
    return sa.cast(column, sa.Text).like(_START + "%")


def present(column: Any) -> Any:
    """SQL: the JWS column still holds its document."""
    return sa.not_(erased(column))
