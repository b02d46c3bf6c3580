"""Building directive documents: deterministic ids, minimised subjects, what the agency needs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interdict import schemas
from interdict.directives.routing import Route, minimise


def directive_id(issuer: str, entry_id: str, revision: int, agency: str, action: str) -> str:
    """The same (entry, revision, agency, action) always gives the same id: a retry is the
    same directive, and agencies use the id as their idempotency key."""
    material = "\x1f".join((issuer, entry_id, str(revision), agency, action)).encode()
    return "d-" + hashlib.sha256(material).hexdigest()[:32]


@dataclass(frozen=True)
class Cause:
    """The accepted revision (and the reason) a directive answers."""

    issuer: str
    entry_id: str
    revision: int
    digest: str
    document: dict[str, Any]  # the revision's verified payload
    reason: str
    effective_from: str


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def build(route: Route, cause: Cause, issued_at: datetime) -> dict[str, Any]:
    doc = cause.document
    directive: dict[str, Any] = {
        "schema": schemas.document_schema("directive"),
        "directive_id": directive_id(cause.issuer, cause.entry_id, cause.revision,
                                     route.agency.id, route.action),
        "agency": route.agency.id,
        "action": route.action,
        "entry_ref": {"issuer": cause.issuer, "entry_id": cause.entry_id,
                      "revision": cause.revision, "digest": cause.digest},
        "legal_basis": doc["legal_basis"],
        "reason": cause.reason,
        "effective_from": cause.effective_from,
        "issued_at": iso(issued_at),
    }
    if route.action != "lift":
        directive["subject"] = minimise(doc["subject"], route.agency)
        directive["measures"] = route.measures
        directive["expires_at"] = doc["expires_at"]
        directive["redress"] = doc["redress"]
    elif "redress" in doc:
        directive["redress"] = doc["redress"]
    return directive
