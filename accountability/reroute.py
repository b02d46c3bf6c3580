"""Applying a measure policy re-routes the entries in force.

When ``policy apply`` changes who must act, every entry in force (active, not expired, its
latest revision routed) is compared, per agency, with what the new policy gives it:

- an agency newly concerned gets an ``impose`` with the subject fields it is now granted;
- one that holds the entry but is no longer concerned gets a ``lift`` (a lift reaches every
  holder, whatever the policy says: no restriction is stranded);
- one that holds it and stays concerned, but whose granted subject (or concerned measures)
  changed, gets an ``amend`` with the newly minimised subject.

"Holds" means the agency's latest directive for the entry imposes or amends, as everywhere in
routing (``outbox.holders_of``). The directives go into the outbox in the transaction that
records the policy, so the next ``sync`` or ``dispatch`` delivers them, and the outbox keeps
a lift behind the imposition it ends. Their ids carry ``reroute_key(digest, seq)``: a policy
that takes a measure away and a later one that gives it back never repeat an id the agency
already applied; ordinary directives keep their deterministic ids.

Entries whose latest revision is not routed yet are left to the next ``plan``, which routes
under the policy in force then. On PostgreSQL the agency rows are locked ``FOR UPDATE`` first:
a planning transaction (which reads them ``FOR SHARE``) either finished before, so its
directives are seen here, or waits and then reads the new policy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability import policy
from interdict.auditlog import log
from interdict.directives import outbox
from interdict.directives.document import Cause, iso, reroute_key
from interdict.directives.routing import AgencyRoute, Route, minimise
from interdict.entries import store
from interdict.keys import jws
from interdict.storage.models import Agency, Directive

REROUTED = "policy.rerouted"
BATCH = 500


@dataclass
class Rerouted:
    """What one policy application queued, per agency and action."""

    applied: policy.Applied
    entries: int = 0  # entries in force examined
    queued: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.queued.values())

    def to_json(self) -> dict[str, Any]:
        return {**self.applied.to_json(), "entries": self.entries,
                "queued": {a: dict(sorted(c.items())) for a, c in sorted(self.queued.items())},
                "directives": self.total}


def apply(session: Session, signer: jws.Signer, document: dict[str, Any], now: datetime,
          actor: str | None = None) -> Rerouted:
    """Put the policy in force (``policy.apply``) and re-route the entries in force under it,
    in the caller's transaction.

    Raises:
        DocumentError: the policy is invalid or names agencies it cannot.
    """
    session.execute(sa.select(Agency.id).order_by(Agency.id).with_for_update())
    applied = policy.apply(session, document, now, actor)
    result = Rerouted(applied)
    if applied.seq is None:
        return result  # already in force: nothing recorded, nothing to change
    session.flush()  # the new policy is what agency_routes reads
    agencies = outbox.agency_routes(session)
    key = reroute_key(applied.policy.digest, applied.seq)
    after = ("", "")
    while batch := store.in_force_page(session, after, BATCH, now, routed_only=True):
        result.entries += len(batch)
        _reroute(session, signer, agencies, batch, key, now, result)
        after = (batch[-1].issuer, batch[-1].entry_id)
    log.append(session, [log.event(REROUTED, actor=applied.policy.applied_by or log.ENGINE,
                                   agency=agency, policy=applied.policy.digest,
                                   applied_seq=applied.seq, impose=counts["impose"],
                                   amend=counts["amend"], lift=counts["lift"])
                         for agency, counts in sorted(result.queued.items())])
    return result


def _held(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str],
                                                                    dict[str, dict[str, Any]]]:
    """Per entry and agency, the payload of the agency's latest directive when it imposes or
    amends (what the agency holds, or will once the outbox delivered it)."""
    wanted = set(keys)
    latest: dict[tuple[str, str], dict[str, tuple[str, str]]] = defaultdict(dict)
    rows = session.execute(
        sa.select(Directive.issuer, Directive.entry_id, Directive.agency, Directive.action,
                  Directive.jws)
        .where(Directive.entry_id.in_({e for _, e in wanted}))  # type: ignore[attr-defined]
        .order_by(Directive.id))  # type: ignore[arg-type]
    for r in rows:
        if (r.issuer, r.entry_id) in wanted:
            latest[(r.issuer, r.entry_id)][r.agency] = (r.action, r.jws)
    return {key: {agency: outbox.payload(token) for agency, (action, token)
                  in latest[key].items() if action in outbox.HOLDING} for key in wanted}


def changes(document: dict[str, Any], held: dict[str, dict[str, Any]],
            agencies: Sequence[AgencyRoute]) -> list[Route]:
    """What one entry in force needs under the policy the agencies were restricted by:
    ``held`` maps each holder to its latest holding directive. Pure."""
    routes = []
    for agency in agencies:
        measures = agency.concerned_measures(document.get("measures", []))
        directive = held.get(agency.id)
        if directive is None:
            if measures:
                routes.append(Route(agency, "impose", measures))
        elif not measures:
            routes.append(Route(agency, "lift", []))
        elif (directive.get("subject") != minimise(document["subject"], agency)
              or directive.get("measures") != measures):
            routes.append(Route(agency, "amend", measures))
    return routes


def _reroute(session: Session, signer: jws.Signer, agencies: Sequence[AgencyRoute],
             batch: Sequence[Any], key: str, now: datetime, result: Rerouted) -> None:
    held = _held(session, ((r.issuer, r.entry_id) for r in batch))
    caused: list[tuple[Route, Cause]] = []
    for row in batch:
        document = outbox.payload(row.jws)
        for r in changes(document, held[(row.issuer, row.entry_id)], agencies):
            lift = r.action == "lift"
            # A lift takes effect now: the policy's apply time is its trigger (lifts.py).
            cause = Cause(row.issuer, row.entry_id, row.revision, row.digest, document,
                          f"the measure policy {r.agency.policy} no longer routes this entry "
                          f"to {r.agency.id}" if lift else document["reason"],
                          iso(now) if lift else document["effective_from"], key)
            caused.append((r, cause))
            result.queued[r.agency.id][r.action] += 1
    if caused:
        outbox.issue(session, signer, caused, now)
