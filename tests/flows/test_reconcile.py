"""Reconcile: an agency that lost, kept or invented directives is found out and put right."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import issuers
from interdict.agencies import onboarding, simulated
from interdict.cli import main
from interdict.directives.throttle import DeliveryPolicy
from interdict.flows.dispatch import deliver_once, plan_once
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.keys import jws, public_key_to_pem
from interdict.storage import transaction
from interdict.storage.models import AuditEvent, Directive, EntryState

pytestmark = pytest.mark.usefixtures("prefect_api")
Make = Callable[..., dict[str, Any]]
TRAVEL = [{"type": "travel.air"}]
UNKNOWN = "d-" + "f" * 32


def sync_without_prefect(inst: Installation) -> None:
    home = str(inst.home.root)
    while ingest_once(home).read:
        pass
    while plan_once(home).causes:
        pass
    for agency in inst.agency_ids():
        deliver_once(home, agency)


def directive(inst: Installation, entry: str, action: str, agency: str = "travel") -> Directive:
    with transaction(inst.db) as session:
        return session.execute(sa.select(Directive).where(
            Directive.entry_id == f"court-7/{entry}", Directive.action == action,
            Directive.agency == agency)).scalar_one()


def reconcile(inst: Installation, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["--home", str(inst.home.root), "reconcile", "--json"]) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_reconcile_finds_every_kind_of_drift_and_closes_it(
        installation: Installation, make_entry: Make,
        capsys: pytest.CaptureFixture[str]) -> None:
    travel = installation.adapter("travel")
    assert isinstance(travel, simulated.SimulatedAgency)
    cases = ("lost", "revoked", "ended", "fine")
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(entry_id=f"court-7/{c}", measures=TRAVEL) for c in cases]))
    sync_without_prefect(installation)
    installation.public.publish(issuers.sign(installation, "court-7", [make_entry(
        entry_id="court-7/revoked", op="revoke", revision=2, subject=None, measures=None,
        expires_at=None, redress=None, listed_at=None, reason="quashed on appeal")]))
    sync_without_prefect(installation)
    lost = directive(installation, "lost", "impose")
    revoked = directive(installation, "revoked", "impose")
    lift = directive(installation, "revoked", "lift")
    ended = directive(installation, "ended", "impose")
    with travel.db.begin() as conn:
        # restored from an old backup: "lost" is gone, the lift of "revoked" never arrived
        for gone in (lost.directive_id, lift.directive_id):
            conn.execute(simulated.received.delete()
                         .where(simulated.received.c.directive_id == gone))
        conn.execute(simulated.restriction.delete()
                     .where(simulated.restriction.c.directive_id == lost.directive_id))
        conn.execute(simulated.restriction.update()
                     .where(simulated.restriction.c.entry_key == "court-7/revoked")
                     .values(status="active", directive_id=revoked.directive_id, revision=1))
        # and something nobody sent it
        conn.execute(simulated.restriction.insert().values(
            entry_key="court-7/other", revision=1, directive_id=UNKNOWN, status="active",
            document={"effective_from": "2020-01-01T00:00:00Z",
                      "expires_at": "2020-02-01T00:00:00Z"}))
    with transaction(installation.db) as session:  # ended while no lift could be written
        session.get_one(EntryState, ("court-7", "court-7/ended")).status = "expired"

    report = reconcile(installation, capsys)
    drift = report["agencies"]["travel"]
    assert drift["missing"] == [lost.directive_id]
    assert sorted(drift["unlifted"]) == sorted([revoked.directive_id, ended.directive_id])
    assert drift["unknown"] == [UNKNOWN]
    assert drift["drift"] == 4 and report["drift"] == 4
    assert sorted(drift["requeued"]) == sorted([lost.directive_id, lift.directive_id])
    (new_lift,) = drift["lifts_issued"]
    assert new_lift == directive(installation, "ended", "lift").directive_id
    assert report["delivered"]["travel"]["delivered"] == 3
    assert {a: d["drift"] for a, d in report["agencies"].items()} == {
        "travel": 4, "loans": 0, "permits": 0}
    # the agency holds exactly what it should, apart from what nobody can explain
    held = set(travel.holdings())
    fine = directive(installation, "fine", "impose").directive_id
    assert held == {lost.directive_id, fine, UNKNOWN}
    who = {"identifier": "passport:E12345678"}
    assert {r["directive_id"] for r in travel.active_restrictions(**who)} == {
        lost.directive_id, fine}

    again = reconcile(installation, capsys)
    assert again["agencies"]["travel"]["unknown"] == [UNKNOWN] and again["drift"] == 1
    assert again["agencies"]["travel"]["requeued"] == []
    with transaction(installation.db) as session:
        log = [json.loads(e) for e in session.execute(
            sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()]
    kinds = Counter(e["outcome"] for e in log if e["action"] == "reconcile.drift")
    assert kinds == {"missing": 1, "unlifted": 2, "unknown": 2}
    compared = [e for e in log if e["action"] == "reconcile.compared"]
    assert len(compared) == 2 * 3
    requeued = [e for e in log if e["action"] == "directive.requeued"]
    assert {e["refs"]["directive_id"] for e in requeued} == {lost.directive_id,
                                                             lift.directive_id}
    assert all(e["actor"] == "interdict" and e["outcome"] == "reconcile" for e in requeued)


def test_pending_and_dead_directives_are_not_requeued_but_reported(
        installation: Installation, make_entry: Make,
        capsys: pytest.CaptureFixture[str]) -> None:
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(entry_id="court-7/a", measures=TRAVEL),
        make_entry(entry_id="court-7/b", measures=TRAVEL)]))
    home = str(installation.home.root)
    while ingest_once(home).read:
        pass
    plan_once(home)
    with transaction(installation.db) as session:
        row = session.execute(sa.select(Directive).where(
            Directive.entry_id == "court-7/b")).scalar_one()
        row.status, row.last_error = "dead", "webhook.status: HTTP 500"
    drift = reconcile(installation, capsys)["agencies"]["travel"]
    # "a" was pending when the agency answered: in flight, and delivered by the same run
    assert drift["stuck"] == [directive(installation, "b", "impose").directive_id]
    assert drift["drift"] == 1 and drift["requeued"] == []
    assert directive(installation, "a", "impose").status == "delivered"
    assert directive(installation, "b", "impose").status == "dead"
    assert main(["--home", str(installation.home.root), "reconcile"]) == 0
    table = capsys.readouterr().out
    assert "1 stuck" in table and "drift 1;" in table


def test_an_agency_that_cannot_list_its_holdings_is_reported_not_fatal(
        installation: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    onboarding.register(installation, {
        "schema": "interdict/agency-manifest/v1", "id": "silent", "name": "Silent",
        "contact": "x@silent.example", "adapter": "webhook",
        "settings": {"endpoint": "https://silent.example/in"}, "measures": ["travel.rail"],
        "subject_fields": ["type"],
        "public_keys": [public_key_to_pem(jws.Signer(Ed25519PrivateKey.generate()).public_key)]})
    report = reconcile(installation, capsys)
    assert "holdings_endpoint" in report["agencies"]["silent"]["error"]
    assert report["agencies"]["travel"]["error"] is None


def test_a_rejected_lift_the_agency_still_holds_is_requeued_a_rejected_impose_is_not(
        installation: Installation, make_entry: Make,
        capsys: pytest.CaptureFixture[str]) -> None:
    travel = installation.adapter("travel")
    assert isinstance(travel, simulated.SimulatedAgency)
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(entry_id=f"court-7/{c}", measures=TRAVEL) for c in ("refused", "spent")]))
    sync_without_prefect(installation)
    revoke = {"op": "revoke", "revision": 2, "subject": None, "measures": None,
              "expires_at": None, "redress": None, "listed_at": None, "reason": "quashed"}
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(entry_id="court-7/unmatched", measures=TRAVEL),
        make_entry(entry_id="court-7/refused", **revoke),
        make_entry(entry_id="court-7/spent", **revoke)]))
    home = str(installation.home.root)
    while ingest_once(home).read:
        pass
    while plan_once(home).causes:
        pass
    max_attempts = DeliveryPolicy.from_settings(
        travel.context.manifest.get("settings", {})).max_attempts
    # what the agencies answered, as delivery records it
    with transaction(installation.db) as session:
        for entry, action, attempts, error in (
                ("unmatched", "impose", 1, "subject.unmatched: no booking matches"),
                ("refused", "lift", 1, "receipt.flagged_lift: agency travel flagged lift"),
                ("spent", "lift", max_attempts, "receipt.flagged_lift: again")):
            row = session.execute(sa.select(Directive).where(
                Directive.entry_id == f"court-7/{entry}", Directive.action == action)).scalar_one()
            row.status, row.attempts, row.last_error = "rejected", attempts, error
    refused = directive(installation, "refused", "lift")
    spent = directive(installation, "spent", "lift")
    unmatched = directive(installation, "unmatched", "impose")

    drift = reconcile(installation, capsys)["agencies"]["travel"]
    assert drift["unlifted"] == [directive(installation, "refused", "impose").directive_id]
    assert drift["requeued"] == [refused.directive_id]
    # an impose the agency refused is its issuer's to fix; a lift refused max_attempts times
    # waits for an operator (dead-letter retry) instead of being resent every run
    assert sorted(drift["stuck"]) == sorted([unmatched.directive_id, spent.directive_id])
    sent = directive(installation, "refused", "lift")
    assert (sent.status, sent.attempts) == ("delivered", 2)  # its attempts kept, one more used
    assert directive(installation, "unmatched", "impose").status == "rejected"
    assert directive(installation, "spent", "lift").status == "rejected"
    assert set(travel.holdings()) == {directive(installation, "spent", "impose").directive_id}
    with transaction(installation.db) as session:
        log = [json.loads(e) for e in session.execute(
            sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()]
    (requeued,) = [e for e in log if e["action"] == "directive.requeued"]
    assert (requeued["outcome"], requeued["refs"]["directive_id"], requeued["refs"]["was"]) == (
        "reconcile", refused.directive_id, "rejected")

    again = reconcile(installation, capsys)["agencies"]["travel"]
    assert again["requeued"] == [] and again["unlifted"] == []
