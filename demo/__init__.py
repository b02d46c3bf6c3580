"""The demo: a complete installation with sample issuers, agencies and entries, then a sync.

The samples (``demo/entries/*.json``) are real entry documents wrapped with how to publish them:
``sign`` (properly), ``tamper`` (sign, then alter the payload in transit) or ``unknown-key``
(signed by an issuer nobody registered). Running the demo again publishes nothing new: Ed25519
signatures are deterministic, so the same sample is the same token, and it is already there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import issuers
from interdict.agencies import onboarding
from interdict.agencies.permits import PermitRegistry
from interdict.home import Home
from interdict.installation import Installation
from interdict.keys import jws
from interdict.keys.jwk import b64u
from interdict.storage import transaction, utcnow
from interdict.storage.models import Agency, Issuer

REPORTED_SUBJECT = "passport:E12345678"  # Zhang Wei: whose subject access report the demo writes

# Permits the registry had issued before interdict, so the demo can show one being suspended.
SEEDED_PERMITS = (
    ("BP-2019-0042", "business", "company-register:HRB-778812", "Northwind Dual-Use Trading Ltd"),
    ("BP-2021-1187", "business", "national-id:X4821937K", "María López Herrera"),
)


@dataclass(frozen=True)
class Sample:
    name: str
    about: str
    issuer: str
    publish: str
    document: dict[str, Any]


def samples() -> list[Sample]:
    folder = resources.files(__name__).joinpath("entries")
    found = []
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".json"):
            data = json.loads(item.read_text(encoding="utf-8"))
            found.append(Sample(item.name.removesuffix(".json"), data["about"], data["issuer"],
                                data["publish"], data["document"]))
    return found


def sample_issuers() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        resources.files(__name__).joinpath("issuers.json").read_text(encoding="utf-8"))
    return found


def setup(home: Home) -> Installation:
    """Create the home, the sample issuers and the three built-in agencies (idempotent)."""
    installation = Installation.init(home)
    with transaction(installation.db) as session:
        have_issuers = set(session.execute(sa.select(Issuer.id)).scalars())
        have_agencies = set(session.execute(sa.select(Agency.id)).scalars())
    for issuer in sample_issuers():
        if issuer["id"] not in have_issuers:
            issuers.add(installation, issuer["id"], name=issuer["name"],
                        measures=issuer["measures"])
    for name in onboarding.BUILTINS:
        if name not in have_agencies:
            onboarding.register_builtin(installation, name)
            if name == "permits":
                registry = installation.adapter("permits")
                assert isinstance(registry, PermitRegistry)
                for permit_id, kind, identifier, holder in SEEDED_PERMITS:
                    registry.grant_permit(permit_id, kind, identifier=identifier, name=holder)
    return installation


def token_for(installation: Installation, sample: Sample) -> str:
    if sample.publish == "unknown-key":
        return _unregistered_signer().sign_document(sample.document, jws.TYP_ENTRY)
    (token,) = issuers.sign(installation, sample.issuer, [sample.document])
    if sample.publish == "tamper":
        header, _, signature = token.split(".")
        altered = {**sample.document, "reason": sample.document["reason"] + " (altered)"}
        token = ".".join((header, b64u(jws.canonical_json(altered)), signature))
    return token


def _unregistered_signer() -> jws.Signer:
    # A fixed seed keeps the demo's bad sample byte-identical from run to run.
    seed = hashlib.sha256(b"interdict demo: an issuer nobody registered").digest()
    return jws.Signer(Ed25519PrivateKey.from_private_bytes(seed))


def publish_samples(installation: Installation) -> int:
    """Publish every sample not yet in the public database; return how many were new."""
    fresh = [t for t in (token_for(installation, s) for s in samples())
             if not installation.public.contains(t)]
    installation.public.publish(fresh)
    return len(fresh)


def write_reports(installation: Installation) -> dict[str, str]:
    """The accountability pages an operator hands out: one person's subject access report
    (written once: the read is audited, and a rerun of the demo should add nothing to the log)
    and the public statistics page (no personal data, so no audited read; refreshed)."""
    from interdict.accountability import pages, stats, subject

    folder = installation.home.root / "reports"
    folder.mkdir(exist_ok=True)
    person = folder / f"subject-{REPORTED_SUBJECT.replace(':', '-')}.html"
    if not person.exists():
        report = subject.report(installation, subject.SubjectId.parse(REPORTED_SUBJECT),
                                "demo: a sample subject access request")
        person.write_text(pages.subject_page(report), encoding="utf-8")
    with transaction(installation.db) as session:
        figures = stats.collect(session, utcnow())
    public = folder / "stats.html"
    public.write_text(pages.stats_page(figures), encoding="utf-8")
    return {"subject": str(person), "stats": str(public)}


def subjects() -> list[tuple[str, str]]:
    """(label, identifier query) for each well-formed sample's subject, for the effect table."""
    seen: dict[str, str] = {}
    for sample in samples():
        subject = sample.document.get("subject")
        if subject and sample.publish == "sign" and subject.get("identifiers"):
            first = subject["identifiers"][0]
            seen.setdefault(subject["names"][0]["value"], f"{first['scheme']}:{first['value']}")
    return list(seen.items())
