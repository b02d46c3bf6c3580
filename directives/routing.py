"""Routing: which agency must do what for one accepted revision. Pure; no database.

An agency is concerned by an entry when it enforces one of the entry's measure types. For each
revision the agencies that already hold the entry are compared with those now concerned:

- ``impose``: every concerned agency gets ``impose``;
- ``amend``: holders still concerned get ``amend``, newly concerned ones ``impose``, and holders
  no longer concerned ``lift``, so an amendment never strands a restriction;
- ``revoke`` (and expiry): every holder gets ``lift``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: outbox statuses of directives that were computed and recorded but not (yet) sent
NOT_SENT = ("shadow", "withheld")


@dataclass(frozen=True)
class AgencyRoute:
    """The part of an agency manifest that routing and minimisation read."""

    id: str
    measures: frozenset[str]
    subject_fields: tuple[str, ...]
    identifier_schemes: frozenset[str] | None
    status: str = "live"  # live | shadow | disabled (agencies/onboarding.py)
    policy: str | None = None  # digest of the measure policy that shaped this route

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], status: str = "live") -> AgencyRoute:
        schemes = manifest.get("identifier_schemes")
        return cls(str(manifest["id"]), frozenset(manifest["measures"]),
                   tuple(manifest["subject_fields"]),
                   frozenset(schemes) if schemes is not None else None, status)

    def concerned_measures(self, measures: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [dict(m) for m in measures if m["type"] in self.measures]


@dataclass(frozen=True)
class Route:
    agency: AgencyRoute
    action: str  # impose | amend | lift
    measures: list[dict[str, Any]]


def route(op: str, measures: Sequence[Mapping[str, Any]], holders: Collection[str],
          agencies: Sequence[AgencyRoute]) -> list[Route]:
    """The directives one revision causes, given which agencies hold the entry now."""
    by_id = {a.id: a for a in agencies}
    if op == "revoke":
        return [Route(by_id[h], "lift", []) for h in sorted(holders) if h in by_id]
    routes = []
    concerned = {a.id for a in agencies if a.concerned_measures(measures)}
    for agency in agencies:
        if agency.id in concerned:
            action = "amend" if agency.id in holders and op == "amend" else "impose"
            routes.append(Route(agency, action, agency.concerned_measures(measures)))
        elif agency.id in holders:
            routes.append(Route(agency, "lift", []))
    return routes


def outbox_status(agency: AgencyRoute, action: str) -> str:
    """How a directive enters the outbox, given its agency's status.

    - live: ``pending``, to be delivered;
    - shadow: ``shadow``, computed and logged but never sent, to compare before going live;
    - disabled: an ``impose`` or ``amend`` is ``withheld`` (not sent; ``agency enable``
      releases what is still in force), but a ``lift`` is ``pending``: it waits in the outbox
      and goes out when the agency is enabled again, or at offboarding, so a restriction the
      agency holds is never stranded.
    """
    if agency.status == "shadow":
        return "shadow"
    if agency.status == "disabled" and action != "lift":
        return "withheld"
    return "pending"


def minimise(subject: Mapping[str, Any], agency: AgencyRoute) -> dict[str, Any]:
    """Only the subject fields (and identifier schemes) the agency's manifest allows."""
    reduced = {k: v for k, v in subject.items() if k in agency.subject_fields}
    if "identifiers" in reduced and agency.identifier_schemes is not None:
        reduced["identifiers"] = [i for i in reduced["identifiers"]
                                  if i["scheme"] in agency.identifier_schemes]
        if not reduced["identifiers"]:
            del reduced["identifiers"]
    return reduced
