"""Routing reads the policy in force: who enforces a measure, which fields each agency gets;
an entry whose measures the policy does not cover is refused."""

from __future__ import annotations

import copy
from typing import Any

import sqlalchemy as sa

from interdict.accountability import policy
from interdict.directives.outbox import payload
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import Directive, QuarantinedEntry
from tests.accountability.conftest import Make, events, publish, sync
from tests.accountability.test_policy import example


def directives(inst: Installation, entry_id: str) -> dict[str, dict[str, Any]]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(Directive.agency, Directive.jws)
                               .where(Directive.entry_id == entry_id)).all()
    return {agency: payload(token) for agency, token in rows}


def test_routing_follows_the_policy_in_force(installation: Installation, prefect_api: str,
                                             make_entry: Make) -> None:
    narrowed = copy.deepcopy(example())
    narrowed["measures"]["credit.loan"]["agencies"]["loans"]["subject_fields"] = [
        "type", "names"]
    with transaction(installation.db) as session:
        applied = policy.apply(session, narrowed, utcnow())
    publish(installation, make_entry(entry_id="court-7/a"),
            make_entry(entry_id="court-7/rail", measures=[{"type": "travel.rail"}]))
    sync(installation)
    sent = directives(installation, "court-7/a")
    assert set(sent) == {"travel", "loans"}
    assert set(sent["loans"]["subject"]) == {"type", "names"}  # no identifiers, no birth date
    assert [m["type"] for m in sent["loans"]["measures"]] == ["credit.loan"]
    assert {i["scheme"] for i in sent["travel"]["subject"]["identifiers"]} == {
        "passport", "national-id"}
    with transaction(installation.db) as session:
        refused = session.execute(sa.select(QuarantinedEntry.reason, QuarantinedEntry.detail)
                                  ).all()
    assert [r.reason for r in refused] == ["policy.measure_uncovered"]
    assert "travel.rail" in refused[0].detail
    assert directives(installation, "court-7/rail") == {}
    issued = events(installation, "directive.issued")
    assert len(issued) == 2 and {e["refs"]["policy"] for e in issued} == {applied.policy.digest}


def test_the_policy_caps_each_measures_duration(installation: Installation, prefect_api: str,
                                                make_entry: Make) -> None:
    capped = copy.deepcopy(example())
    capped["measures"]["credit.loan"]["max_duration_days"] = 400
    with transaction(installation.db) as session:
        policy.apply(session, capped, utcnow())
    # BASE_ENTRY lasts two years: fine for travel.air alone, too long once credit.loan is in it
    publish(installation, make_entry(entry_id="court-7/air", measures=[{"type": "travel.air"}]),
            make_entry(entry_id="court-7/loan"))
    sync(installation)
    with transaction(installation.db) as session:
        refused = session.execute(sa.select(QuarantinedEntry.reason, QuarantinedEntry.detail)
                                  ).all()
    assert [r.reason for r in refused] == ["policy.duration"]
    assert "the policy allows 400" in refused[0].detail
    assert set(directives(installation, "court-7/air")) == {"travel"}
