"""Flags over HTTP: a webhook agency (the reference receiver with a flag hook) flags a
directive; delivery records it as an answer, never as delivered, and never sends it again. An
agency that flags a lift is refused: the lift is recorded as rejected and stays open in slo
until ``dead-letter retry`` sends it again; a rejected impose is never retried. Receipts v1
still verify."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import schemas
from interdict.accountability import lifts
from interdict.agencies.inbound import Flag, receipt_document
from interdict.agencies.receiver import Applied
from interdict.cli import main
from interdict.directives import receipts
from interdict.directives.delivery import Delivered
from interdict.errors import VerificationError
from interdict.installation import Installation
from interdict.keys import jws
from interdict.storage import transaction
from interdict.storage.models import Receipt
from tests.directives.conftest import AGENCY, Clock, WebhookAgency, directives, events, publish
from tests.directives.test_faults import deliver, route

Make = Callable[..., dict[str, Any]]
MakeAgency = Callable[..., WebhookAgency]
LAW = Flag("conflicts_with_local_law", "a national court order suspends this measure here")


def test_a_flag_over_http_is_an_answer_never_delivered_and_never_resent(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock) -> None:
    hooks = webhook_agency()
    hooks.receiver.flag = lambda document: LAW if document["entry_ref"]["entry_id"].endswith(
        "flagged") else None
    publish(installation, make_entry(entry_id="court-7/flagged", measures=[{"type": "travel.air"}]),
            make_entry(entry_id="court-7/fine", measures=[{"type": "travel.air"}]))
    route(installation)
    outcome = deliver(installation, clock)
    assert (outcome.delivered, outcome.flagged, outcome.failed) == (1, 1, 0)
    rows = {r.entry_id: r for r in directives(installation)}
    flagged = rows["court-7/flagged"]
    assert (flagged.status, rows["court-7/fine"].status) == ("flagged", "delivered")
    assert flagged.last_error == "flagged: conflicts_with_local_law"
    assert [r["directive_id"] for r in hooks.receiver.received()] == [
        rows["court-7/fine"].directive_id]  # the receiver did not keep what it will not act on

    for _ in range(3):  # long past any backoff: nothing is due
        clock.advance(3600)
        assert deliver(installation, clock).attempted == 0
    assert hooks.receiver.attempts()[flagged.directive_id] == 1
    assert {r.entry_id: r.attempts for r in directives(installation)}["court-7/flagged"] == 1
    (recorded,) = [e for e in events(installation) if e["action"] == "receipt.recorded"
                   and e["refs"]["directive_id"] == flagged.directive_id]
    assert recorded["outcome"] == "flagged"
    assert recorded["refs"]["flag"] == "conflicts_with_local_law"
    assert "court order" not in str(recorded)  # the code only: details stay in the receipt


def _flags_lifts(installation: Installation, make_entry: Make, hooks: WebhookAgency,
                 clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Delivered:
    """Impose on the webhook agency, make it flag lifts, revoke: the delivery of the lift."""
    publish(installation, make_entry(entry_id="court-7/a", measures=[{"type": "travel.air"}]))
    route(installation)
    assert deliver(installation, clock).delivered == 1
    applying = hooks.receiver.apply

    def refuses_lifts(webhook_id: str, token: str) -> Applied:
        answer = applying(webhook_id, token)
        if answer.action == "lift":  # a misbehaving agency: the schema forbids this
            return Applied("flagged", action="lift", flag=LAW)
        return answer

    monkeypatch.setattr(hooks.receiver, "apply", refuses_lifts)
    publish(installation, make_entry(entry_id="court-7/a", revision=2, op="revoke",
                                     subject=None, measures=None, expires_at=None,
                                     listed_at=None, redress=None, reason="lifted"))
    route(installation)
    return deliver(installation, clock)


def _late(installation: Installation, clock: Clock) -> list[lifts.Lift]:
    with transaction(installation.db) as session:
        report = lifts.report(session, clock() + timedelta(hours=2), timedelta(hours=1))
    return [x for x in report.late if x.agency == AGENCY]


def test_a_flagged_lift_is_refused_stays_open_and_is_late_in_slo(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = webhook_agency()
    outcome = _flags_lifts(installation, make_entry, hooks, clock, monkeypatch)
    assert (outcome.rejected, outcome.flagged, outcome.failed) == (1, 0, 0)
    lift = next(r for r in directives(installation) if r.action == "lift")
    assert lift.status == "rejected"
    assert lift.last_error.startswith("receipt.flagged_lift: agency hooks flagged lift")
    with transaction(installation.db) as session:  # an invalid receipt is not kept as one
        assert session.get(Receipt, lift.directive_id) is None
    (refused,) = [e for e in events(installation) if e["action"] == "receipt.refused"]
    assert refused["refs"]["directive_id"] == lift.directive_id
    assert refused["outcome"] == "receipt.flagged_lift" and refused["refs"]["digest"]

    clock.advance(3600)
    assert deliver(installation, clock).attempted == 0  # an answer: not retried
    (late,) = _late(installation, clock)
    assert (late.directive_id, late.status, late.done) == (lift.directive_id, "rejected", False)


def test_a_flagged_lift_is_sent_again_by_dead_letter_retry_once_the_agency_is_fixed(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    hooks = webhook_agency()
    assert _flags_lifts(installation, make_entry, hooks, clock, monkeypatch).rejected == 1
    lift = next(r for r in directives(installation) if r.action == "lift")
    home = ["--home", str(installation.home.root)]
    assert main([*home, "dead-letter", "list", "--agency", AGENCY, "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)  # the same operator attention
    assert (listed["directive_id"], listed["status"]) == (lift.directive_id, "rejected")
    assert listed["last_error"].startswith("receipt.flagged_lift")
    assert main([*home, "dead-letter", "list"]) == 0
    assert "rejected" in capsys.readouterr().out

    monkeypatch.delattr(hooks.receiver, "apply")  # the agency stops flagging lifts
    assert main([*home, "dead-letter", "retry", "--agency", AGENCY, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requeued"] == [lift.directive_id]
    requeued = next(r for r in directives(installation) if r.action == "lift")
    assert (requeued.status, requeued.attempts) == ("pending", 0)
    (event,) = [e for e in events(installation) if e["action"] == "directive.requeued"]
    assert event["actor"].startswith("operator:") and event["outcome"] == "dead_letter_retry"
    assert event["refs"] == {"directive_id": lift.directive_id, "agency": AGENCY,
                             "was": "rejected"}

    assert deliver(installation, clock).delivered == 1
    done = next(r for r in directives(installation) if r.action == "lift")
    assert (done.status, done.last_error) == ("delivered", None)
    assert [r["directive_id"] for r in hooks.receiver.received()
            if r["action"] == "lift"] == [lift.directive_id]
    assert _late(installation, clock) == []  # the agency's receipt came within the deadline
    assert main([*home, "dead-letter", "list"]) == 0
    assert "no dead letters" in capsys.readouterr().out


def test_a_rejected_impose_is_not_retried(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    hooks = webhook_agency()
    monkeypatch.setattr(hooks.receiver, "apply", lambda webhook_id, token: Applied(
        "rejected", "subject.unmatched: no booking matches this subject"))
    publish(installation, make_entry(entry_id="court-7/a", measures=[{"type": "travel.air"}]))
    route(installation)
    assert deliver(installation, clock).rejected == 1
    home = ["--home", str(installation.home.root)]
    assert main([*home, "dead-letter", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # the issuer's to fix, not the operator's
    assert main([*home, "dead-letter", "retry", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requeued"] == []
    (impose,) = directives(installation)
    assert impose.status == "rejected"
    assert not [e for e in events(installation) if e["action"] == "directive.requeued"]


def _signed(document: dict[str, Any]) -> tuple[str, dict[str, bytes]]:
    signer = jws.Signer(Ed25519PrivateKey.generate())
    return signer.sign_document(document, jws.TYP_RECEIPT), {signer.kid: signer.public_key}


def test_receipts_v1_still_verify_and_v2_is_checked_against_the_directive() -> None:
    directive_id = "d-" + "1" * 32
    v1 = {"schema": "interdict/receipt/v1", "directive_id": directive_id, "agency": AGENCY,
          "status": "applied", "at": "2026-11-27T09:31:15Z"}
    token, keys = _signed(v1)
    assert receipts.verify(token, agency=AGENCY, directive_id=directive_id, agency_keys=keys,
                           action="lift") == v1
    token, keys = _signed({**v1, "status": "flagged"})  # v1 has no flagged status
    with pytest.raises(VerificationError) as raised:
        receipts.verify(token, agency=AGENCY, directive_id=directive_id, agency_keys=keys,
                        action="impose")
    assert raised.value.code == "receipt.schema"

    flagged = receipt_document(directive_id, AGENCY, "flagged", action="impose", flag=LAW)
    schemas.check("receipt", flagged, 2)
    token, keys = _signed(flagged)
    assert receipts.flag_of(receipts.verify(token, agency=AGENCY, directive_id=directive_id,
                                            agency_keys=keys, action="impose")) == {
        "code": LAW.code, "detail": LAW.detail}
    with pytest.raises(VerificationError) as raised:  # says impose, answers a lift
        receipts.verify(token, agency=AGENCY, directive_id=directive_id, agency_keys=keys,
                        action="amend")
    assert raised.value.code == "receipt.mismatch"
    with pytest.raises(VerificationError) as raised:  # the directive is a lift
        receipts.verify(token, agency=AGENCY, directive_id=directive_id, agency_keys=keys,
                        action="lift")
    assert raised.value.code == receipts.FLAGGED_LIFT
    token, keys = _signed({**flagged, "schema": "interdict/receipt/v9"})
    with pytest.raises(VerificationError, match="interdict/receipt/v1, interdict/receipt/v2"):
        receipts.verify(token, agency=AGENCY, directive_id=directive_id, agency_keys=keys)
    assert set(receipts.FLAG_CODES) == {"identity_not_established", "conflicts_with_local_law",
                                        "data_inaccurate", "not_competent", "other"}


def test_the_receiver_erases_what_it_held_on_a_lift(installation: Installation,
                                                     make_entry: Make,
                                                     webhook_agency: MakeAgency,
                                                     clock: Clock) -> None:
    hooks = webhook_agency()
    publish(installation, make_entry(entry_id="court-7/a", measures=[{"type": "travel.air"}]))
    route(installation)
    deliver(installation, clock)
    assert [bool(r["jws"]) for r in hooks.receiver.received()] == [True]
    publish(installation, make_entry(entry_id="court-7/a", revision=2, op="revoke",
                                     subject=None, measures=None, expires_at=None,
                                     listed_at=None, redress=None, reason="lifted"))
    route(installation)
    assert deliver(installation, clock).delivered == 1
    stored = {r["action"]: r["jws"] for r in hooks.receiver.received()}
    assert stored["impose"] == "" and stored["lift"]
    lift = next(r for r in directives(installation) if r.action == "lift")
    with transaction(installation.db) as session:
        token = session.execute(sa.select(Receipt.jws).where(
            Receipt.directive_id == lift.directive_id)).scalar_one()
    document = jws.parse_payload(jws.parse(token, jws.TYP_RECEIPT))
    assert (document["erased"], document["action"]) == (True, "lift")
    schemas.check("receipt", document, 2)
