"""Building directive documents: deterministic ids, minimised subjects, what the agency needs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from interdict import schemas
from interdict.directives.routing import Route, minimise


def directive_id(issuer: str, entry_id: str, revision: int, agency: str, action: str,
                 reroute: str | None = None) -> str:
    """The same (entry, revision, agency, action) always gives the same id: a retry is the
    same directive, and agencies use the id as their idempotency key.

    ``reroute`` names the policy application that caused a directive (``reroute_key``): a
    policy that takes a measure from an agency and a later one that gives it back send a
    lift and a new impose for the same revision, which must not repeat an id the agency
    already applied. Ordinary directives have none, so their ids are unchanged."""
    parts = (issuer, entry_id, str(revision), agency, action) + ((reroute,) if reroute else ())
    material = "\x1f".join(parts).encode()
    return "d-" + hashlib.sha256(material).hexdigest()[:32]


def reroute_key(policy_digest: str, applied_seq: int) -> str:
    """The discriminator of the directives one ``policy apply`` causes: the policy's digest and
    the audit sequence number of its ``policy.applied`` event. The digest alone would repeat
    when a policy is applied again (A, B, A); an auditor recomputes the ids from the log."""
    return f"{policy_digest}@{applied_seq}"


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
    reroute: str | None = None  # reroute_key when a policy application caused it


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def build(route: Route, cause: Cause, issued_at: datetime) -> dict[str, Any]:
    """A directive (schema directive/v2) naming the policy that routed it.

    Raises:
        ValueError: the route carries no policy digest (every route is shaped by one).
    """
    doc = cause.document
    if route.agency.policy is None:
        raise ValueError(f"route to {route.agency.id} carries no policy digest")
    directive: dict[str, Any] = {
        "schema": schemas.document_schema("directive"),
        "directive_id": directive_id(cause.issuer, cause.entry_id, cause.revision,
                                     route.agency.id, route.action, cause.reroute),
        "agency": route.agency.id,
        "action": route.action,
        "entry_ref": {"issuer": cause.issuer, "entry_id": cause.entry_id,
                      "revision": cause.revision, "digest": cause.digest},
        "legal_basis": doc["legal_basis"],
        "reason": cause.reason,
        "effective_from": cause.effective_from,
        "issued_at": iso(issued_at),
        "policy": route.agency.policy,
    }
    if route.action != "lift":
        directive["subject"] = minimise(doc["subject"], route.agency)
        directive["measures"] = route.measures
        directive["expires_at"] = doc["expires_at"]
        directive["redress"] = doc["redress"]
    elif "redress" in doc:
        directive["redress"] = doc["redress"]
    return directive
