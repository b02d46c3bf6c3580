"""Registering agencies from their manifests (the full onboarding workflow builds on this)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from interdict import schemas
from interdict.agencies.registry import adapter_class
from interdict.agencies.simulated import SimulatedAgency
from interdict.auditlog import log
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.keys import jws, public_key_from_pem, public_key_to_pem, truststore
from interdict.storage import transaction
from interdict.storage.models import Agency

BUILTINS = ("travel", "loans", "permits")


def builtin_manifest(name: str) -> dict[str, Any]:
    text = resources.files("interdict.agencies").joinpath(f"manifests/{name}.json").read_text()
    manifest: dict[str, Any] = json.loads(text)
    return manifest


def register(installation: Installation, manifest: dict[str, Any], *,
             actor: str | None = None) -> Agency:
    """Validate a manifest and register the agency with its receipt keys.

    Raises:
        DocumentError: the manifest does not match its schema.
        UsageError: no public key, an unknown adapter, or the agency exists already.
    """
    schemas.check("agency-manifest", manifest)
    adapter_class(manifest["adapter"])  # fails clearly if the adapter is not installed
    keys = [public_key_from_pem(pem) for pem in manifest.get("public_keys", [])]
    if not keys:
        raise UsageError(f"manifest of {manifest['id']!r} lists no public_keys: its receipts "
                         "could not be verified", code="agency.no_key")
    actor = actor or log.operator()
    with transaction(installation.db) as session:
        if session.get(Agency, manifest["id"]) is not None:
            raise UsageError(f"agency {manifest['id']!r} is already registered",
                             code="agency.exists")
        agency = Agency(id=manifest["id"], name=manifest["name"], adapter=manifest["adapter"],
                        manifest=manifest, enabled=True)
        session.add(agency)
        for raw in keys:
            truststore.register_key(session, owner_kind="agency", owner_id=manifest["id"],
                                    public_key=raw, actor=actor)
        log.append(session, [log.event("agency.registered", actor=actor, agency=manifest["id"],
                                       adapter=manifest["adapter"],
                                       measures=",".join(manifest["measures"]),
                                       manifest=jws.digest(jws.canonical_json(manifest)))])
    return agency


def register_builtin(installation: Installation, name: str) -> Agency:
    """Provision a built-in simulated agency (its own store and receipt key) and register it."""
    manifest = builtin_manifest(name)
    cls = adapter_class(manifest["adapter"])
    if not issubclass(cls, SimulatedAgency):
        raise UsageError(f"{name!r} is not a built-in simulated agency")
    public = cls.provision(installation.agency_context(manifest))
    manifest["public_keys"] = [public_key_to_pem(public)]
    return register(installation, manifest)
