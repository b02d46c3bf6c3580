"""The measure policy as data: a versioned document, applied and audited.

Per measure type the policy says which agencies enforce it (and which subject fields each may
receive), which legal instruments may justify it, its longest duration and its review
interval (schemas/policy.v1.json). The latest applied policy is in force. Until one is
applied, a default derived from the registered agencies' manifests is: every measure type of
the vocabulary is covered, routed to the agencies whose manifests enforce it, with the fields
those manifests name, the admission's longest duration, and SIS's three-year review, so an
installation behaves as before the policy existed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlmodel import Session

from interdict import schemas
from interdict.accountability.timing import iso
from interdict.auditlog import log
from interdict.directives.routing import AgencyRoute
from interdict.entries.admission import DEFAULT_MAX_DURATION
from interdict.entries.admission import Policy as AdmissionPolicy
from interdict.errors import DocumentError, UsageError
from interdict.keys.jws import canonical_json, digest
from interdict.storage.models import Agency, AppliedPolicy

DEFAULT_REVIEW_DAYS = 3 * 365  # SIS (Regulation 2018/1862 art. 53): review within 3 years
# After a lift, personal data is kept this long, then erased (accountability/erasure.py): as
# long as SIS keeps its logs (2018/1862 art. 18) and as the general limitation period for claims
# (PRC Civil Code art. 188), so a person can still prove and contest a measure that ended.
DEFAULT_RETENTION_DAYS = 3 * 365
APPLIED = "policy.applied"


@dataclass(frozen=True)
class Policy:
    document: dict[str, Any]
    digest: str
    applied_by: str | None  # None: the default, derived from the manifests
    applied_at: datetime | None

    @classmethod
    def of(cls, document: dict[str, Any], applied_by: str | None = None,
           applied_at: datetime | None = None) -> Policy:
        return cls(document, digest(canonical_json(document)), applied_by, applied_at)

    def covers(self, measure_type: str) -> bool:
        return measure_type in self.document["measures"]

    def review_days(self, measure_types: list[str]) -> int:
        """The shortest review interval of the measures (the default for uncovered ones)."""
        days = [self.document["measures"][t]["review_interval_days"]
                for t in measure_types if self.covers(t)]
        return min(days, default=DEFAULT_REVIEW_DAYS)

    @property
    def retention_days(self) -> int:
        """Days personal data is kept after an entry is lifted (``retention_days``)."""
        return int(self.document.get("retention_days", DEFAULT_RETENTION_DAYS))

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "applied_by": self.applied_by or "default",
                "applied_at": iso(self.applied_at), "policy": self.document}


def restrict(policy: Policy, agencies: Sequence[AgencyRoute]) -> list[AgencyRoute]:
    """The agencies as routing must see them under the policy: each enforces the measures the
    policy gives it (and its manifest declares), and receives only the subject fields and
    identifier schemes both the policy grants for those measures and its manifest asks for.
    A grant per measure is merged per agency (union over its measures): the directive for an
    entry carries one subject."""
    routed = []
    for agency in agencies:
        grants = [rule["agencies"][agency.id] for measure, rule
                  in policy.document["measures"].items()
                  if agency.id in rule["agencies"] and measure in agency.measures]
        measures = frozenset(m for m, rule in policy.document["measures"].items()
                             if agency.id in rule["agencies"]) & agency.measures
        fields = {f for g in grants for f in g["subject_fields"]}
        schemes: frozenset[str] | None = agency.identifier_schemes
        if grants and all("identifier_schemes" in g for g in grants):
            granted = frozenset(s for g in grants for s in g["identifier_schemes"])
            schemes = granted if schemes is None else schemes & granted
        routed.append(replace(agency, measures=measures,
                              subject_fields=tuple(f for f in agency.subject_fields
                                                   if f in fields),
                              identifier_schemes=schemes, policy=policy.digest))
    return routed


def admission_policy(session: Session) -> AdmissionPolicy:
    """What admission checks from the policy in force: the measure types it covers, the
    longest each may last, the legal instruments that may justify each, and how many
    extensions each allows (absent: no cap)."""
    measures = active(session).document["measures"]
    return AdmissionPolicy(covered=frozenset(measures),
                           max_days={m: r["max_duration_days"] for m, r in measures.items()},
                           instruments={m: frozenset(r["instruments"])
                                        for m, r in measures.items() if "instruments" in r},
                           max_extensions={m: r["max_extensions"] for m, r in measures.items()
                                           if "max_extensions" in r})


def vocabulary() -> list[str]:
    return list(schemas.load("common")["$defs"]["measure_type"]["enum"])


def default(manifests: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The policy the manifests imply (see the module docstring)."""
    measures: dict[str, Any] = {}
    for measure in vocabulary():
        agencies = {}
        for m in sorted(manifests, key=lambda m: str(m["id"])):
            if measure in m["measures"]:
                grant: dict[str, Any] = {"subject_fields": list(m["subject_fields"])}
                if m.get("identifier_schemes") is not None:
                    grant["identifier_schemes"] = list(m["identifier_schemes"])
                agencies[str(m["id"])] = grant
        measures[measure] = {"agencies": agencies,
                             "max_duration_days": DEFAULT_MAX_DURATION.days,
                             "review_interval_days": DEFAULT_REVIEW_DAYS}
    return {"schema": schemas.document_schema("policy"), "version": "default",
            "note": "derived from the agency manifests; apply a policy to replace it",
            "measures": measures}


def _manifests(session: Session) -> dict[str, dict[str, Any]]:
    rows = session.execute(sa.select(Agency).where(Agency.status != "offboarded")).scalars()
    return {row.id: dict(row.manifest) for row in rows}


def active(session: Session) -> Policy:
    row = session.execute(sa.select(AppliedPolicy).order_by(
        AppliedPolicy.id.desc()).limit(1)).scalar_one_or_none()  # type: ignore[union-attr]
    if row is None:
        return Policy.of(default(list(_manifests(session).values())))
    return Policy(json.loads(row.document), row.digest, row.applied_by, row.applied_at)


def read(path: Path) -> dict[str, Any]:
    """A policy file, JSON or YAML, checked against its schema.

    Raises:
        UsageError: ``policy.file`` when it cannot be read or parsed.
        DocumentError: ``schema.violation`` / ``schema.unknown_field`` naming the spot.
    """
    try:
        text = path.read_text(encoding="utf-8")
        document = (yaml.safe_load(text) if path.suffix in (".yaml", ".yml")
                    else json.loads(text))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read the policy {path}: {exc}", code="policy.file") from None
    try:
        schemas.check("policy", document)
    except DocumentError as exc:
        raise DocumentError(f"{path}: {exc.message}", code=exc.code) from None
    return dict(document)


def check_agencies(session: Session, document: Mapping[str, Any]) -> None:
    """Every agency the policy names is registered and its manifest enforces the measure.

    Raises:
        DocumentError: ``policy.unknown_agency`` or ``policy.agency_measure``.
    """
    manifests = _manifests(session)
    for measure, rule in document["measures"].items():
        for agency in rule["agencies"]:
            if agency not in manifests:
                raise DocumentError(f"measures/{measure}: no agency {agency!r} is registered "
                                    f"(known: {', '.join(sorted(manifests)) or 'none'})",
                                    code="policy.unknown_agency")
            if measure not in manifests[agency]["measures"]:
                raise DocumentError(f"measures/{measure}: agency {agency!r} does not enforce "
                                    f"{measure} (its manifest lists "
                                    f"{', '.join(manifests[agency]['measures'])})",
                                    code="policy.agency_measure")


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What changes, one line per measure and setting (per agency for agencies)."""
    changes: list[dict[str, Any]] = []
    if before.get("retention_days") != after.get("retention_days"):
        changes.append({"measure": "*", "change": "retention_days",
                        "before": before.get("retention_days"),
                        "after": after.get("retention_days")})
    old, new = before["measures"], after["measures"]
    for measure in sorted(set(old) | set(new)):
        if measure not in new:
            changes.append({"measure": measure, "change": "uncovered"})
            continue
        if measure not in old:
            changes.append({"measure": measure, "change": "covered",
                            "agencies": sorted(new[measure]["agencies"])})
            continue
        a, b = old[measure], new[measure]
        for key in ("instruments", "max_duration_days", "review_interval_days",
                    "max_extensions"):
            if a.get(key) != b.get(key):
                changes.append({"measure": measure, "change": key, "before": a.get(key),
                                "after": b.get(key)})
        for agency in sorted(set(a["agencies"]) | set(b["agencies"])):
            grant_a, grant_b = a["agencies"].get(agency), b["agencies"].get(agency)
            if grant_a == grant_b:
                continue
            change = ("agency_added" if grant_a is None else
                      "agency_removed" if grant_b is None else "agency_fields")
            changes.append({"measure": measure, "change": change, "agency": agency,
                            "before": grant_a, "after": grant_b})
    return changes


@dataclass(frozen=True)
class Applied:
    policy: Policy
    previous: str
    changes: list[dict[str, Any]]
    seq: int | None = None  # of its ``policy.applied`` event; None when nothing was recorded

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.policy.digest, "previous": self.previous,
                "changes": self.changes, "unchanged": not self.changes}


def apply(session: Session, document: dict[str, Any], now: datetime,
          actor: str | None = None) -> Applied:
    """Record the policy as in force and audit it (``policy.applied``), in the caller's
    transaction. Applying the policy already in force records nothing. ``policy apply``
    calls this through ``reroute.apply``, which also re-routes the entries in force.

    Raises:
        DocumentError: the policy is invalid or names agencies it cannot (check_agencies).
    """
    schemas.check("policy", document)
    check_agencies(session, document)
    current = active(session)
    policy = Policy.of(document, actor or log.operator(), now)
    changes = diff(current.document, document)
    if policy.digest == current.digest and current.applied_by is not None:
        return Applied(current, current.digest, [])
    session.add(AppliedPolicy(digest=policy.digest, document=canonical_json(document).decode(),
                              applied_by=policy.applied_by or "", applied_at=now))
    seqs = log.append(session, [log.event(APPLIED, actor=policy.applied_by or log.ENGINE,
                                          digest=policy.digest, previous=current.digest,
                                          version=str(document["version"])[:100],
                                          changes=len(changes))])
    return Applied(policy, current.digest, changes, seqs[0])
