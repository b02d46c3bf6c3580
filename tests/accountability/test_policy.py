"""The measure policy as data: a default from the manifests, diff, apply, audit."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from interdict.accountability import policy
from interdict.agencies import onboarding
from interdict.cli import main
from interdict.directives.routing import AgencyRoute
from interdict.errors import DocumentError
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import AppliedPolicy
from tests.accountability.conftest import events


def example() -> dict[str, Any]:
    text = Path(policy.__file__).parent.parent.joinpath("schemas/examples/policy.json")
    return dict(json.loads(text.read_text()))


def test_the_default_policy_is_what_the_manifests_say(installation: Installation) -> None:
    with transaction(installation.db) as session:
        current = policy.active(session)
    assert current.applied_by is None and current.digest.startswith("sha256:")
    measures = current.document["measures"]
    assert set(measures) == set(policy.vocabulary())  # nothing refused that was accepted
    assert list(measures["travel.air"]["agencies"]) == ["travel"]
    assert measures["credit.loan"]["agencies"]["loans"] == {
        "subject_fields": ["type", "names", "birth_dates", "identifiers"],
        "identifier_schemes": ["national-id", "tax-id", "company-register"]}
    assert measures["procurement.contract"]["agencies"] == {}
    assert measures["travel.air"]["review_interval_days"] == policy.DEFAULT_REVIEW_DAYS


def test_diff_names_each_change() -> None:
    before = example()
    after = copy.deepcopy(before)
    del after["measures"]["procurement.contract"]
    after["measures"]["credit.loan"]["review_interval_days"] = 180
    after["measures"]["travel.air"]["agencies"]["travel"]["subject_fields"] = ["type"]
    after["measures"]["permit.business"] = {"agencies": {"permits": {"subject_fields": []}},
                                            "max_duration_days": 30,
                                            "review_interval_days": 30}
    assert policy.diff(before, after) == [
        {"measure": "credit.loan", "change": "review_interval_days", "before": 365,
         "after": 180},
        {"measure": "permit.business", "change": "covered", "agencies": ["permits"]},
        {"measure": "procurement.contract", "change": "uncovered"},
        {"measure": "travel.air", "change": "agency_fields", "agency": "travel",
         "before": before["measures"]["travel.air"]["agencies"]["travel"],
         "after": after["measures"]["travel.air"]["agencies"]["travel"]}]
    assert policy.diff(before, before) == []


def test_apply_records_who_and_the_digest_once(installation: Installation) -> None:
    with transaction(installation.db) as session:
        default = policy.active(session).digest
        applied = policy.apply(session, example(), utcnow(), actor="operator:ana")
    assert applied.previous == default and applied.changes
    with transaction(installation.db) as session:
        current = policy.active(session)
        again = policy.apply(session, example(), utcnow(), actor="operator:bo")
        rows = session.execute(sa.select(AppliedPolicy)).scalars().all()
    assert current.digest == applied.policy.digest and current.applied_by == "operator:ana"
    assert current.document == example()
    assert again.changes == [] and len(rows) == 1  # the same policy again records nothing
    (event,) = events(installation, policy.APPLIED)
    assert event["actor"] == "operator:ana"
    assert event["refs"] == {"digest": applied.policy.digest, "previous": default,
                             "version": "2026-11-27.1", "changes": len(applied.changes)}


@pytest.mark.parametrize(("change", "code", "where"), [
    (lambda d: d["measures"]["travel.air"].update(colour="red"), "schema.unknown_field",
     "/measures/travel.air"),
    (lambda d: d["measures"].update({"travel.moon": d["measures"]["travel.air"]}),
     "schema.violation", "/measures"),
    (lambda d: d["measures"]["credit.loan"]["agencies"].update(bank={"subject_fields": []}),
     "policy.unknown_agency", "no agency 'bank'"),
    (lambda d: d["measures"]["credit.loan"]["agencies"].update(travel={"subject_fields": []}),
     "policy.agency_measure", "does not enforce credit.loan"),
])
def test_a_bad_policy_is_refused_and_nothing_changes(installation: Installation, change: Any,
                                                    code: str, where: str) -> None:
    document = example()
    change(document)
    with transaction(installation.db) as session, \
            pytest.raises(DocumentError, match=where) as raised:
        policy.apply(session, document, utcnow())
    assert raised.value.code == code
    assert events(installation, policy.APPLIED) == []


def test_policy_commands(installation: Installation, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(installation.home.root)]
    file = tmp_path / "policy.yaml"
    file.write_text(yaml.safe_dump(example()))
    assert main([*home, "policy", "diff", str(file), "--json"]) == 0
    changes = json.loads(capsys.readouterr().out)
    assert {"measure": "travel.rail", "change": "uncovered"} in changes
    assert main([*home, "policy", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["applied_by"] == "default"
    assert main([*home, "policy", "apply", str(file)]) == 0
    assert "applied sha256:" in capsys.readouterr().err
    assert main([*home, "policy", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["policy"] == example() and shown["applied_by"].startswith("operator:")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert main([*home, "policy", "apply", str(broken)]) == 1
    assert "error[policy.file]" in capsys.readouterr().err


def test_routing_under_the_default_policy_is_routing_by_the_manifests() -> None:
    manifests = [onboarding.builtin_manifest(n) for n in onboarding.BUILTINS]
    agencies = [AgencyRoute.from_manifest(m) for m in manifests]
    default = policy.Policy.of(policy.default(manifests))
    routed = policy.restrict(default, agencies)
    assert [replace(a, policy=None) for a in routed] == agencies
    assert {a.policy for a in routed} == {default.digest}


def test_routing_under_a_policy_narrows_measures_fields_and_schemes() -> None:
    manifests = [onboarding.builtin_manifest(n) for n in onboarding.BUILTINS]
    agencies = [AgencyRoute.from_manifest(m) for m in manifests]
    routed = {a.id: a for a in policy.restrict(policy.Policy.of(example()), agencies)}
    travel, loans, permits = routed["travel"], routed["loans"], routed["permits"]
    assert travel.measures == {"travel.air"}  # travel.rail is not covered any more
    assert travel.subject_fields == ("type", "names", "birth_dates", "identifiers")
    assert travel.identifier_schemes == {"passport", "national-id"}
    assert loans.measures == {"credit.loan"}
    assert loans.identifier_schemes == {"national-id", "tax-id", "company-register"}
    assert permits.measures == frozenset() and permits.subject_fields == ()
