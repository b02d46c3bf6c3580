"""Agency flags: the travel agency will not act on a directive whose subject it cannot match a
booking on. The flag is recorded as flagged (never delivered), not retried, and shows in
`flags`, `status`, the issuer report, the subject report, the statistics and the audit bundle;
lifts delete the agencies' data and say so (erased)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interdict import schemas
from interdict.accountability import erasure
from interdict.accountability.policy import DEFAULT_RETENTION_DAYS
from interdict.agencies.simulated import received, restriction
from interdict.agencies.travel import TravelBooking
from interdict.cli import main
from interdict.directives.outbox import payload
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import Directive, Receipt
from tests.accountability.conftest import Make, events, publish, revoke, sync

TAX_ONLY = {"type": "person", "names": [{"value": "Wang Fang", "kind": "primary"}],
            "identifiers": [{"scheme": "tax-id", "value": "CN-TAX-991"}]}
CODE = "identity_not_established"


def cli(capsys: pytest.CaptureFixture[str], inst: Installation, *args: str) -> Any:
    capsys.readouterr()
    assert main(["--home", str(inst.home.root), *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def directive_rows(inst: Installation) -> dict[tuple[str, str], Directive]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(Directive)).scalars().all()
    return {(r.agency, r.action): r for r in rows}


def receipts(inst: Installation) -> dict[str, dict[str, Any]]:
    """The stored receipts' payloads, each checked to be what the receipt row says."""
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(Receipt.directive_id, Receipt.status, Receipt.jws))
        found = {d: (s, payload(t)) for d, s, t in rows}
    assert all(s == document["status"] for s, document in found.values())
    return {d: document for d, (_, document) in found.items()}


@pytest.fixture
def flagged(installation: Installation, prefect_api: str, make_entry: Make) -> Installation:
    """court-7/tax: travel.air and credit.loan on a person known by a tax id only. Loans
    matches on tax ids and applies; travel receives no identifier (its manifest takes
    passports and national ids) and flags it."""
    publish(installation, make_entry(entry_id="court-7/tax", subject=TAX_ONLY))
    report = sync(installation)
    assert report["directives"]["travel"]["flagged"] == 1
    assert report["directives"]["travel"]["delivered"] == 0
    assert report["directives"]["loans"]["delivered"] == 1
    return installation


def test_a_flag_is_recorded_as_flagged_never_delivered_and_not_retried(
        flagged: Installation) -> None:
    rows = directive_rows(flagged)
    travel, loans = rows[("travel", "impose")], rows[("loans", "impose")]
    assert (travel.status, loans.status) == ("flagged", "delivered")
    assert travel.last_error == f"flagged: {CODE}" and travel.attempts == 1
    receipt = receipts(flagged)[travel.directive_id]
    assert receipt["status"] == "flagged" and receipt["schema"] == "interdict/receipt/v2"
    assert receipt["flag"]["code"] == CODE and "passport" in receipt["flag"]["detail"]
    schemas.check("receipt", receipt, 2)

    (recorded,) = [e for e in events(flagged, "receipt.recorded")
                   if e["refs"]["directive_id"] == travel.directive_id]
    assert recorded["outcome"] == "flagged" and recorded["refs"]["flag"] == CODE
    assert "CN-TAX-991" not in json.dumps(recorded) and "Wang" not in json.dumps(recorded)

    sync(flagged)  # answered: nothing is sent again
    assert directive_rows(flagged)[("travel", "impose")].attempts == 1
    attempts = [e for e in events(flagged, "delivery.attempted")
                if e["refs"]["directive_id"] == travel.directive_id]
    assert len(attempts) == 1

    # the agency acts on nothing and keeps no subject for it; reconcile calls it no drift
    agency = flagged.adapter("travel")
    assert isinstance(agency, TravelBooking)
    assert agency.holdings() == [] and agency.check_booking(name="Wang Fang").allowed
    with agency.db.connect() as conn:
        assert conn.execute(sa.select(restriction)).all() == []
        assert conn.execute(sa.select(received.c.status)).scalars().all() == ["flagged"]


def test_reconcile_reports_a_flag_apart_from_drift_and_does_not_resend_it(
        flagged: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    travel = directive_rows(flagged)[("travel", "impose")]
    drift = cli(capsys, flagged, "reconcile")["agencies"]["travel"]
    assert drift["flagged"] == [travel.directive_id]
    assert drift["drift"] == 0 and drift["requeued"] == []
    assert directive_rows(flagged)[("travel", "impose")].status == "flagged"


def test_flags_are_surfaced_to_the_operator_the_issuer_the_subject_and_the_public(
        flagged: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    travel = directive_rows(flagged)[("travel", "impose")]
    (row,) = cli(capsys, flagged, "flags")
    assert {k: row[k] for k in ("issuer", "entry_id", "revision", "agency", "action", "code",
                                "directive_id")} == {
        "issuer": "court-7", "entry_id": "court-7/tax", "revision": 1, "agency": "travel",
        "action": "impose", "code": CODE, "directive_id": travel.directive_id}
    assert row["detail"] and row["at"]
    assert cli(capsys, flagged, "flags", "--issuer", "someone-else") == []

    status = cli(capsys, flagged, "status")
    assert status["flags"] == 1 and status["directives"] == {"delivered": 1, "flagged": 1}
    assert status["agencies"]["travel"]["directives"] == {"flagged": 1}

    report = cli(capsys, flagged, "issuer", "report", "court-7")
    (entry,) = report["entries"]
    assert entry["entry_id"] == "court-7/tax" and report["flags"] == 1
    assert entry["agencies"]["travel"]["status"] == "flagged"
    assert entry["agencies"]["travel"]["flag"]["code"] == CODE
    assert entry["agencies"]["loans"]["status"] == "delivered"
    assert entry["agencies"]["loans"]["flag"] is None
    capsys.readouterr()
    assert main(["--home", str(flagged.home.root), "issuer", "report", "nobody"]) == 1
    assert "error[issuer.unknown]" in capsys.readouterr().err

    person = cli(capsys, flagged, "subject", "report", "--id", "tax-id:CN-TAX-991",
                 "--purpose", "case 2026-7")
    (measure,) = person["measures"]
    (told,) = measure["agencies"]["travel"]
    assert told["status"] == "flagged" and told["flag"]["code"] == CODE
    assert measure["agencies"]["loans"][0]["flag"] is None

    figures = cli(capsys, flagged, "stats")
    assert figures["flags"] == {"by_code": {CODE: 1}, "by_agency": {"travel": 1}}
    assert figures["active"]["by_agency"] == {"loans": 1}  # travel does not act on it

    capsys.readouterr()
    assert main(["--home", str(flagged.home.root), "flags"]) == 0
    assert "travel" in capsys.readouterr().out  # a table (wrapped to the terminal's width)


def test_the_subject_page_shows_the_flag(flagged: Installation, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "report.html"
    assert main(["--home", str(flagged.home.root), "subject", "report", "--id",
                 "tax-id:CN-TAX-991", "--purpose", "case 2026-7", "--html", str(page)]) == 0
    html = page.read_text()
    assert "not acted on because" in html and CODE in html
    stats_page = tmp_path / "stats.html"
    assert main(["--home", str(flagged.home.root), "stats", "--html", str(stats_page)]) == 0
    assert "Agency flags" in stats_page.read_text()


def test_lifts_erase_the_agencies_data_and_the_bundle_verifies_with_v2_receipts(
        flagged: Installation, make_entry: Make, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    publish(flagged, make_entry(entry_id="court-7/case-1"))
    sync(flagged)
    publish(flagged, revoke(make_entry, "court-7/case-1"), revoke(make_entry, "court-7/tax"))
    sync(flagged)
    with transaction(flagged.db) as session:
        lifts = list(session.execute(sa.select(Directive).where(
            Directive.action == "lift")).scalars())
    # every holder gets its lift, the agency that flagged the impose too (it holds nothing)
    assert sorted((r.agency, r.entry_id) for r in lifts) == [
        ("loans", "court-7/case-1"), ("loans", "court-7/tax"), ("travel", "court-7/case-1"),
        ("travel", "court-7/tax")]
    found = receipts(flagged)
    for lift in lifts:
        assert lift.status == "delivered"
        receipt = found[lift.directive_id]
        assert receipt["action"] == "lift" and receipt["erased"] is True
        schemas.check("receipt", receipt, 2)
    recorded = [e for e in events(flagged, "receipt.recorded")
                if e["refs"]["directive_id"] in {r.directive_id for r in lifts}]
    assert recorded and all(e["refs"]["erased"] is True for e in recorded)

    travel = flagged.adapter("travel")
    assert isinstance(travel, TravelBooking)
    with travel.db.connect() as conn:
        kept = conn.execute(sa.select(restriction.c.document)).scalars().all()
    assert kept and all("subject" not in doc and "reason" not in doc for doc in kept)
    assert travel.check_booking(identifier="passport:E12345678").allowed

    slo = json.loads(_run(capsys, flagged, "slo", "--json"))
    assert slo["late"] == [] and all(a["open"] == 0 for a in slo["agencies"].values())

    home = str(flagged.home.root)
    assert main(["--home", home, "audit", "export", str(tmp_path / "bundle")]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", str(tmp_path / "bundle"), "--vkey",
                 flagged.log_signer.vkey()]) == 0
    exported = (tmp_path / "bundle" / "receipts.jsonl").read_text().split()
    assert any(payload(t)["status"] == "flagged" for t in exported)


def _run(capsys: pytest.CaptureFixture[str], inst: Installation, *args: str) -> str:
    capsys.readouterr()
    main(["--home", str(inst.home.root), *args])
    return capsys.readouterr().out


def test_only_flags_in_force_are_listed_and_counted_and_all_shows_the_history(
        flagged: Installation, make_entry: Make, capsys: pytest.CaptureFixture[str]) -> None:
    # an amend the agency flags again: the flag in force is the amend's, the impose's is history
    publish(flagged, make_entry(entry_id="court-7/tax", subject=TAX_ONLY, op="amend",
                                revision=2))
    sync(flagged)
    (row,) = cli(capsys, flagged, "flags")
    assert (row["revision"], row["action"], row["code"]) == (2, "amend", CODE)
    assert [r["revision"] for r in cli(capsys, flagged, "flags", "--all")] == [1, 2]
    assert cli(capsys, flagged, "status")["flags"] == 1
    assert cli(capsys, flagged, "stats")["flags"] == {"by_code": {CODE: 1},
                                                      "by_agency": {"travel": 1}}

    # lifted: no flag is in force any more (the lift answers it), the history stays
    publish(flagged, revoke(make_entry, "court-7/tax", revision=3))
    sync(flagged)
    assert cli(capsys, flagged, "flags") == []
    assert cli(capsys, flagged, "status")["flags"] == 0
    assert cli(capsys, flagged, "stats")["flags"] == {"by_code": {}, "by_agency": {}}
    assert [r["revision"] for r in cli(capsys, flagged, "flags", "--all")] == [1, 2]


def test_an_erased_flag_keeps_its_code_and_the_receipts_action_but_not_the_detail(
        flagged: Installation, make_entry: Make, capsys: pytest.CaptureFixture[str]) -> None:
    travel = directive_rows(flagged)[("travel", "impose")]
    detail = receipts(flagged)[travel.directive_id]["flag"]["detail"]
    publish(flagged, revoke(make_entry, "court-7/tax"))
    sync(flagged)
    erased = erasure.erase(flagged, now=utcnow() + timedelta(days=DEFAULT_RETENTION_DAYS + 1))
    assert erased.entries == 1

    kept = receipts(flagged)[travel.directive_id]
    assert kept["tombstone"]["kind"] == "receipt"
    assert (kept["status"], kept["action"], kept["flag_code"]) == ("flagged", "impose", CODE)
    assert detail not in json.dumps(kept)
    schemas.check("tombstone", kept["tombstone"], 1)
    (row,) = cli(capsys, flagged, "flags", "--all")
    assert (row["code"], row["detail"]) == (CODE, None)
    assert cli(capsys, flagged, "flags") == []
    with transaction(flagged.db) as session:
        lift = session.execute(sa.select(Receipt.jws).join(
            Directive, Directive.directive_id == Receipt.directive_id).where(
            Directive.agency == "travel", Directive.action == "lift")).scalar_one()
    assert payload(lift)["action"] == "lift" and "flag_code" not in payload(lift)
    capsys.readouterr()
    assert main(["--home", str(flagged.home.root), "flags", "--all"]) == 0
    out = capsys.readouterr().out
    assert "identity" in out and "None" not in out
