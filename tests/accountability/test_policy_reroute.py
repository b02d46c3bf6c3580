"""Applying a policy re-routes the entries in force: lifts where it takes a measure away,
imposes where it gives one, amends where it changes the fields granted. Each directive names
the policy that routed it (directive/v2), and agencies still take directive/v1."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interdict import schemas
from interdict.accountability import lifts
from interdict.agencies.receiver import Receiver
from interdict.agencies.simulated import SimulatedAgency
from interdict.cli import main
from interdict.directives.document import directive_id
from interdict.directives.outbox import payload
from interdict.flows.dispatch import plan_once
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.keys import jws
from interdict.storage import transaction
from interdict.storage.models import AppliedPolicy, Directive
from tests.accountability.conftest import ZHANG, Make, events, publish, sync
from tests.accountability.test_policy import example

NATIONAL_ID = "national-id:110101198004010011"  # BASE_ENTRY's, which loans may see


@pytest.fixture
def apply(installation: Installation, tmp_path: Path,
          capsys: pytest.CaptureFixture[str]) -> Any:
    """``interdict policy apply FILE --json``; its answer."""
    def run(document: dict[str, Any]) -> dict[str, Any]:
        file = tmp_path / f"policy-{document['version']}.json"
        file.write_text(json.dumps(document))
        capsys.readouterr()
        assert main(["--home", str(installation.home.root), "policy", "apply", str(file),
                     "--json"]) == 0
        answer: dict[str, Any] = json.loads(capsys.readouterr().out)
        return answer

    return run


def version(document: dict[str, Any], name: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["version"] = name
    return changed


def without_loans() -> dict[str, Any]:
    """The example policy, with credit.loan enforced by nobody."""
    policy = version(example(), "no-loans")
    policy["measures"]["credit.loan"]["agencies"] = {}
    return policy


def rows(inst: Installation, entry_id: str) -> list[Any]:
    with transaction(inst.db) as session:
        return list(session.execute(
            sa.select(Directive.directive_id, Directive.agency, Directive.action,
                      Directive.status, Directive.jws)
            .where(Directive.entry_id == entry_id).order_by(Directive.id)).all())


def held(inst: Installation, agency: str, entry_id: str) -> dict[str, Any]:
    """The agency's own record of the entry (its restriction row)."""
    adapter = inst.adapter(agency)
    assert isinstance(adapter, SimulatedAgency)
    with adapter.db.connect() as conn:
        row = conn.execute(sa.text("SELECT status, directive_id, document FROM restriction "
                                   "WHERE entry_key = :key"), {"key": entry_id}).one()
    return {"status": row.status, "directive_id": row.directive_id,
            "document": json.loads(row.document)}


def allowed(inst: Installation, agency: str, identifier: str) -> bool:
    adapter = inst.adapter(agency)
    assert isinstance(adapter, SimulatedAgency)
    return adapter.decide(identifier=identifier).allowed


def applied_at(inst: Installation) -> Any:
    with transaction(inst.db) as session:
        return session.execute(sa.select(AppliedPolicy.applied_at)
                               .order_by(AppliedPolicy.id.desc()).limit(1)).scalar_one()  # type: ignore[union-attr]


def test_a_policy_that_takes_a_measure_away_lifts_it_there_timed_from_the_apply(
        installation: Installation, prefect_api: str, make_entry: Make, apply: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    first = apply(example())
    publish(installation, make_entry())
    sync(installation)
    assert not allowed(installation, "loans", NATIONAL_ID)

    answer = apply(without_loans())
    assert answer["queued"] == {"loans": {"lift": 1}} and answer["directives"] == 1
    assert answer["previous"] == first["digest"]
    assert sync(installation)["directives"]["loans"]["delivered"] == 1
    assert allowed(installation, "loans", NATIONAL_ID)
    assert held(installation, "loans", "court-7/case-1")["status"] == "lifted"
    assert not allowed(installation, "travel", ZHANG)  # travel keeps its restriction
    lift = rows(installation, "court-7/case-1")[-1]
    assert (lift.agency, lift.action, lift.status) == ("loans", "lift", "delivered")
    assert payload(lift.jws)["policy"] == answer["digest"]

    when = applied_at(installation)
    with transaction(installation.db) as session:
        (measured,) = [x for x in lifts.load(session) if x.directive_id == lift.directive_id]
    assert measured.cause == "policy" and measured.trigger == when and measured.done
    assert measured.latency(when) == measured.receipt_at - when  # type: ignore[operator]
    assert main(["--home", str(installation.home.root), "slo", "--json"]) == 0
    slo = json.loads(capsys.readouterr().out)
    assert (slo["agencies"]["loans"]["lifts"], slo["agencies"]["loans"]["done"]) == (1, 1)
    assert slo["late"] == [] and "travel" not in slo["agencies"]
    (event,) = events(installation, "policy.rerouted")
    assert event["refs"] == {"agency": "loans", "policy": answer["digest"],
                             "applied_seq": event["refs"]["applied_seq"], "impose": 0,
                             "amend": 0, "lift": 1}


def test_a_policy_that_adds_an_agency_imposes_there_with_only_the_granted_fields(
        installation: Installation, prefect_api: str, make_entry: Make, apply: Any) -> None:
    no_travel = version(example(), "no-travel")
    no_travel["measures"]["travel.air"]["agencies"] = {}
    apply(no_travel)
    publish(installation, make_entry())
    sync(installation)
    assert {r.agency for r in rows(installation, "court-7/case-1")} == {"loans"}

    narrow = version(example(), "travel-names-only")
    narrow["measures"]["travel.air"]["agencies"]["travel"] = {
        "subject_fields": ["type", "names", "identifiers"], "identifier_schemes": ["passport"]}
    answer = apply(narrow)
    assert answer["queued"] == {"travel": {"impose": 1}}
    sync(installation)
    record = held(installation, "travel", "court-7/case-1")
    assert record["status"] == "active" and record["document"]["action"] == "impose"
    assert record["document"]["subject"] == {
        "type": "person", "names": make_entry()["subject"]["names"],
        "identifiers": [{"scheme": "passport", "value": "E12345678", "country": "CN"}]}
    assert record["document"]["policy"] == answer["digest"]
    assert not allowed(installation, "travel", ZHANG)


def test_a_narrower_field_grant_sends_an_amend_with_the_smaller_subject(
        installation: Installation, prefect_api: str, make_entry: Make, apply: Any) -> None:
    apply(example())
    publish(installation, make_entry())
    sync(installation)
    assert set(held(installation, "loans", "court-7/case-1")["document"]["subject"]) == {
        "type", "names", "birth_dates", "identifiers"}

    narrow = version(example(), "loans-names-only")
    narrow["measures"]["credit.loan"]["agencies"]["loans"]["subject_fields"] = ["type", "names"]
    answer = apply(narrow)
    assert answer["queued"] == {"loans": {"amend": 1}}
    sync(installation)
    record = held(installation, "loans", "court-7/case-1")
    assert record["status"] == "active" and record["document"]["action"] == "amend"
    assert set(record["document"]["subject"]) == {"type", "names"}
    assert record["document"]["entry_ref"]["revision"] == 1  # no new revision: a re-route
    adapter = installation.adapter("loans")
    assert isinstance(adapter, SimulatedAgency)
    assert not adapter.decide(name="Zhang Wei").allowed  # still refused, by name


def test_re_applying_the_policy_in_force_queues_nothing(
        installation: Installation, prefect_api: str, make_entry: Make, apply: Any,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    apply(example())
    publish(installation, make_entry())
    sync(installation)
    before = rows(installation, "court-7/case-1")
    again = apply(example())
    assert again["queued"] == {} and again["directives"] == 0 and again["unchanged"]
    reviewed = version(example(), "shorter-review")  # changes nothing about who acts
    reviewed["measures"]["travel.air"]["review_interval_days"] = 365
    answer = apply(reviewed)
    assert answer["changes"] and answer["queued"] == {} and answer["entries"] == 1
    assert rows(installation, "court-7/case-1") == before
    # the plain command says what it queued, per agency
    file = tmp_path / "no-loans.json"
    file.write_text(json.dumps(without_loans()))
    assert main(["--home", str(installation.home.root), "policy", "apply", str(file)]) == 0
    captured = capsys.readouterr()
    assert "queued for loans: 1 (1 lift)" in captured.out
    assert "1 directives queued" in captured.err


def test_a_b_a_b_delivers_each_change_with_ids_of_its_own_and_every_directive_names_its_policy(
        installation: Installation, prefect_api: str, make_entry: Make, apply: Any,
        tmp_path: Path) -> None:
    digests = []
    a = apply(example())
    publish(installation, make_entry())
    sync(installation)
    digests.append(a["digest"])
    for policy, want, action in ((without_loans(), True, "lift"), (example(), False, "impose"),
                                 (without_loans(), True, "lift")):
        answer = apply(policy)
        assert answer["queued"] == {"loans": {action: 1}}
        sync(installation)
        assert allowed(installation, "loans", NATIONAL_ID) is want
        digests.append(answer["digest"])
    sent = rows(installation, "court-7/case-1")
    loans = [r for r in sent if r.agency == "loans"]
    assert [r.action for r in loans] == ["impose", "lift", "impose", "lift"]
    assert len({r.directive_id for r in sent}) == len(sent)  # no id repeated
    assert all(r.status == "delivered" for r in sent)
    # the first impose is an ordinary directive: its id is the deterministic one
    assert loans[0].directive_id == directive_id("court-7", "court-7/case-1", 1, "loans",
                                                 "impose")
    assert [payload(r.jws)["policy"] for r in loans] == digests
    issued = {e["refs"]["directive_id"]: e["refs"] for e in events(installation,
                                                                    "directive.issued")}
    for r in sent:
        document = payload(r.jws)
        assert document["schema"] == "interdict/directive/v2"
        schemas.check("directive", document, 2)
        assert issued[r.directive_id]["policy"] == document["policy"]
    assert "reroute" not in issued[loans[0].directive_id]
    assert len({issued[r.directive_id]["reroute"] for r in loans[1:]}) == 3
    # A, B, A, B: the agency ends lifted, and knows no directive twice
    record = held(installation, "loans", "court-7/case-1")
    assert (record["status"], record["directive_id"]) == ("lifted", loans[-1].directive_id)
    # an auditor verifies the whole story offline, v2 directives and all
    home = str(installation.home.root)
    assert main(["--home", home, "audit", "export", str(tmp_path / "bundle")]) == 0
    assert main(["audit", "verify", str(tmp_path / "bundle")]) == 0


def test_a_lift_to_a_holder_still_follows_the_imposition_it_ends(
        installation: Installation, prefect_api: str, make_entry: Make, apply: Any) -> None:
    """Re-routed before the impose was delivered: the outbox keeps the lift behind it."""
    apply(example())
    publish(installation, make_entry())
    ingest_and_plan(installation)
    assert {r.status for r in rows(installation, "court-7/case-1")} == {"pending"}
    apply(without_loans())
    sync(installation)
    loans = [r for r in rows(installation, "court-7/case-1") if r.agency == "loans"]
    assert [(r.action, r.status) for r in loans] == [("impose", "delivered"),
                                                     ("lift", "delivered")]
    assert held(installation, "loans", "court-7/case-1")["status"] == "lifted"


def ingest_and_plan(inst: Installation) -> None:
    """The first steps of a sync, without delivery: the directives wait in the outbox."""
    home = str(inst.home.root)
    ingest_once(home)
    plan_once(home)


def test_agencies_still_accept_directive_v1(
        installation: Installation, prefect_api: str, make_entry: Make, tmp_path: Path) -> None:
    publish(installation, make_entry())
    sync(installation)
    (impose,) = [r for r in rows(installation, "court-7/case-1") if r.agency == "travel"]
    v1 = {k: v for k, v in payload(impose.jws).items() if k != "policy"}
    v1.update(schema="interdict/directive/v1", directive_id="d-" + "1" * 32)
    schemas.check("directive", v1, 1)
    signer = installation.engine_signer
    token = signer.sign_document(v1, jws.TYP_DIRECTIVE)
    (receipt,) = installation.adapter("travel").deliver([token])
    assert isinstance(receipt, str) and payload(receipt)["status"] == "applied"
    receiver = Receiver(agency="travel", database=tmp_path / "received.db",
                        engine_keys={signer.kid: signer.public_key}, signer=signer)
    try:
        assert receiver.apply(v1["directive_id"], token).status == "applied"
        assert receiver.holdings() == [v1["directive_id"]]
        unknown = signer.sign_document({**v1, "schema": "interdict/directive/v9"},
                                       jws.TYP_DIRECTIVE)
        answer = receiver.apply(v1["directive_id"], unknown)
        assert answer.status == "rejected"
        assert answer.detail and answer.detail.startswith("schema.unknown_version")
    finally:
        receiver.close()


def test_a_policy_round_trip_while_an_agency_is_disabled_is_released_when_it_comes_back(
        installation: Installation, prefect_api: str, make_entry: Make, apply: Any) -> None:
    home = str(installation.home.root)
    apply(example())
    publish(installation, make_entry())
    sync(installation)
    assert main(["--home", home, "agency", "disable", "loans"]) == 0
    apply(without_loans())  # the lift waits for the agency
    apply(version(example(), "loans-again"))  # the impose is withheld
    loans = [r for r in rows(installation, "court-7/case-1") if r.agency == "loans"]
    assert [(r.action, r.status) for r in loans] == [
        ("impose", "delivered"), ("lift", "pending"), ("impose", "withheld")]
    assert main(["--home", home, "agency", "enable", "loans"]) == 0
    sync(installation)
    loans = [r for r in rows(installation, "court-7/case-1") if r.agency == "loans"]
    assert [(r.action, r.status) for r in loans] == [
        ("impose", "delivered"), ("lift", "delivered"), ("impose", "delivered")]
    assert held(installation, "loans", "court-7/case-1")["directive_id"] == loans[-1].directive_id
    assert not allowed(installation, "loans", NATIONAL_ID)
