"""Onboarding an agency: its manifest checked, its adapter proven by the conformance kit, the
agency and its receipt keys registered, and (with a backfill) directives for what is already
in force. Later changes of status (disable, enable, offboard) are in ``agencies.lifecycle``.

    interdict agency onboard MANIFEST [--backfill] [--shadow]

    1. the manifest matches its schema; the id was never used (directive ids derive from it)
    2. the conformance kit passes            audit: agency.conformance (passed or failed)
    3. a self-keyed adapter's receipt key is provisioned in the home and named in the manifest
    4. the agency and its keys are registered, live or in shadow
                                             audit: key.added, agency.registered
    5. with --backfill: one impose per active entry that concerns it
                                             audit: directive.issued, agency.released
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from interdict import schemas
from interdict.agencies import conformance, lifecycle
from interdict.agencies.registry import adapter_class
from interdict.agencies.simulated import SimulatedAgency
from interdict.auditlog import log
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.keys import jws, public_key_from_pem, public_key_to_pem, thumbprint, truststore
from interdict.storage import transaction
from interdict.storage.models import Agency

BUILTINS = ("travel", "loans", "permits")


class ConformanceFailed(UsageError):
    """The adapter failed the conformance kit; ``report`` says which checks and why."""

    def __init__(self, report: conformance.Report) -> None:
        super().__init__(f"agency {report.agency!r} failed the conformance kit "
                         f"({report.summary()}); nothing was registered",
                         code="agency.conformance_failed")
        self.report = report


@dataclass(frozen=True)
class Onboarded:
    agency: str
    status: str  # live | shadow
    conformance: conformance.Report
    released: lifecycle.Released | None  # the backfill, when asked for

    def to_json(self) -> dict[str, Any]:
        return {"agency": self.agency, "status": self.status,
                "conformance": self.conformance.to_json(),
                "backfill": self.released.to_json() if self.released else None}


def builtin_manifest(name: str) -> dict[str, Any]:
    text = resources.files("interdict.agencies").joinpath(f"manifests/{name}.json").read_text()
    manifest: dict[str, Any] = json.loads(text)
    return manifest


def onboard(installation: Installation, manifest: dict[str, Any], *, backfill: bool = False,
            shadow: bool = False, actor: str | None = None) -> Onboarded:
    """Check, prove, register and (optionally) backfill one agency.

    Raises:
        DocumentError: the manifest does not match its schema.
        UsageError: the id is taken (``agency.exists``).
        ConformanceFailed: the kit failed (an adapter not installed, no receipt key, or any
            misbehaviour); nothing was registered.
    """
    actor = actor or log.operator()
    manifest = copy.deepcopy(manifest)
    schemas.check("agency-manifest", manifest)
    _refuse_taken(installation, manifest["id"])
    report = conformance.run(manifest)
    _audit_conformance(installation, manifest, report, actor)
    if not report.ok:
        raise ConformanceFailed(report)
    _provision(installation, manifest)
    status = lifecycle.SHADOW if shadow or manifest.get("shadow") else lifecycle.LIVE
    register(installation, manifest, actor=actor, status=status)
    released = (lifecycle.release(installation, manifest["id"], backfill=True, actor=actor)
                if backfill else None)
    return Onboarded(manifest["id"], status, report, released)


def register(installation: Installation, manifest: dict[str, Any], *,
             actor: str | None = None, status: str = "live") -> Agency:
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
                        manifest=manifest, enabled=status == lifecycle.LIVE, status=status)
        session.add(agency)
        for raw in keys:
            truststore.register_key(session, owner_kind="agency", owner_id=manifest["id"],
                                    public_key=raw, actor=actor)
        log.append(session, [log.event("agency.registered", actor=actor, agency=manifest["id"],
                                       adapter=manifest["adapter"],
                                       measures=",".join(manifest["measures"]),
                                       manifest=jws.digest(jws.canonical_json(manifest)),
                                       status=status)])
    return agency


def register_builtin(installation: Installation, name: str,
                     settings: dict[str, Any] | None = None) -> Agency:
    """Provision a built-in simulated agency (its own store and receipt key) and register it,
    with ``settings`` over those of its manifest."""
    manifest = builtin_manifest(name)
    manifest["settings"] = {**manifest.get("settings", {}), **(settings or {})}
    if not issubclass(adapter_class(manifest["adapter"]), SimulatedAgency):
        raise UsageError(f"{name!r} is not a built-in simulated agency")
    _provision(installation, manifest)
    return register(installation, manifest)


def _provision(installation: Installation, manifest: dict[str, Any]) -> None:
    """A self-keyed adapter (one with ``provision``, like the simulations and the adapters
    ``agency new`` makes) creates its receipt key in ``<home>/agencies/<id>``; the manifest
    then names it, so the trust store verifies its receipts."""
    provision = getattr(adapter_class(manifest["adapter"]), "provision", None)
    if not callable(provision):
        return
    raw = provision(installation.agency_context(manifest))
    listed = manifest.get("public_keys", [])
    if thumbprint(raw) not in {thumbprint(public_key_from_pem(pem)) for pem in listed}:
        manifest["public_keys"] = [*listed, public_key_to_pem(raw)]


def _refuse_taken(installation: Installation, agency_id: str) -> None:
    with transaction(installation.db) as session:
        row = session.get(Agency, agency_id)
    if row is None:
        return
    if row.status == lifecycle.OFFBOARDED:
        raise UsageError(f"agency {agency_id!r} was offboarded; an agency id is never reused "
                         "(directive ids derive from it): choose another id",
                         code="agency.exists")
    raise UsageError(f"agency {agency_id!r} is already registered ({row.status}); see "
                     f"`interdict agency show {agency_id}`", code="agency.exists")


def _audit_conformance(installation: Installation, manifest: dict[str, Any],
                       report: conformance.Report, actor: str) -> None:
    failed = ",".join(c.name for c in report.failed)
    with transaction(installation.db) as session:
        log.append(session, [log.event(
            "agency.conformance", actor=actor, outcome="passed" if report.ok else "failed",
            agency=manifest["id"], adapter=manifest["adapter"],
            manifest=jws.digest(jws.canonical_json(manifest)),
            checks=len(report.checks), failed=failed or None)])
