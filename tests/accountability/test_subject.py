"""Subject access: exactly that person's measures across agencies, and the read audited
without personal data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interdict.accountability import subject
from interdict.accountability.pseudonyms import pseudonym
from interdict.cli import main
from interdict.errors import UsageError
from interdict.installation import Installation
from tests.accountability.conftest import ZHANG, events

PERSONAL = ("E12345678", "110101198004010011", "Zhang", "张伟", "1980-04-01", "G99887766",
            "Li Na")


def test_the_report_lists_exactly_that_subjects_measures(synced: Installation) -> None:
    report = subject.report(synced, subject.SubjectId.parse(ZHANG), "SAR 2026-118")
    by_entry = {m["entry_id"]: m for m in report["measures"]}
    assert set(by_entry) == {"court-7/case-1", "court-7/case-2"}  # not Li Na's case-3
    assert report["active"] == 1
    active, revoked = by_entry["court-7/case-1"], by_entry["court-7/case-2"]
    assert active["status"] == "active" and active["lifted_at"] is None
    assert active["measures"] == ["travel.air", "credit.loan"]
    assert active["legal_basis"]["instrument"] == "Civil Procedure Law"
    assert active["redress"]["authority"] == "Court 7 review chamber"
    assert active["decision"]["reference"] == "(2026) Court 7 No. 1"
    assert active["notice"]["channel"] == "registered_post" and active["assessment"]
    assert {a: [d["action"] for d in ds] for a, ds in active["agencies"].items()} == {
        "travel": ["impose"], "loans": ["impose"]}
    loans = active["agencies"]["loans"][0]
    assert loans["status"] == "delivered" and loans["receipt"] == "applied"
    assert loans["fields_sent"] == ["birth_dates", "identifiers", "names", "type"]
    assert revoked["status"] == "revoked" and revoked["lifted_at"] == "2026-11-01T00:00:00Z"
    assert [d["action"] for d in revoked["agencies"]["travel"]] == ["impose", "lift"]
    assert [r["op"] for r in revoked["revisions"]] == ["impose", "revoke"]
    text = json.dumps(report, ensure_ascii=False)
    assert "G99887766" not in text and "Li Na" not in text and "other case" not in text


def test_matching_ignores_case_and_spaces_but_not_the_scheme(synced: Installation) -> None:
    loose = subject.report(synced, subject.SubjectId.parse("passport: e1234 5678"), "SAR 7")
    assert len(loose["measures"]) == 2
    wrong_scheme = subject.report(synced, subject.SubjectId.parse("national-id:E12345678"),
                                  "SAR 7")
    assert wrong_scheme["measures"] == []
    nobody = subject.report(synced, subject.SubjectId.parse("passport:X0"), "SAR 8")
    assert nobody == {**nobody, "active": 0, "measures": []}


def test_every_read_is_audited_without_personal_data(synced: Installation) -> None:
    subject.report(synced, subject.SubjectId.parse(ZHANG), "SAR 2026-118", actor="operator:ana")
    subject.report(synced, subject.SubjectId.parse("passport:X0"), "SAR 2026-119")
    first, second = events(synced, subject.READ)
    assert first["actor"] == "operator:ana"
    assert first["refs"]["purpose"] == "SAR 2026-118" and first["refs"]["measures"] == 2
    assert first["refs"]["subject"] == pseudonym(synced.home, "passport:e12345678")
    assert second["refs"]["subject"] != first["refs"]["subject"]
    logged = json.dumps(events(synced), ensure_ascii=False)
    assert not [p for p in PERSONAL if p in logged]


@pytest.mark.parametrize(("purpose", "why"), [
    ("", "say why"), ("x" * 201, "keep it under"),
    ("request from E12345678", "contains the identifier")])
def test_a_purpose_is_required_and_carries_no_identifier(synced: Installation, purpose: str,
                                                         why: str) -> None:
    before = len(events(synced))
    with pytest.raises(UsageError, match=why) as raised:
        subject.report(synced, subject.SubjectId.parse(ZHANG), purpose)
    assert raised.value.code == "subject.purpose"
    assert len(events(synced)) == before  # refused: nothing read, nothing logged


def test_identifier_must_be_scheme_and_value() -> None:
    for bad in ("E12345678", "passport:", ":E1"):
        with pytest.raises(UsageError, match="SCHEME:VALUE"):
            subject.SubjectId.parse(bad)


def test_subject_report_command_json_and_html(synced: Installation, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(synced.home.root)]
    assert main([*home, "subject", "report", "--id", ZHANG, "--purpose", "SAR 1",
                 "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["measures"]) == 2
    page = tmp_path / "report.html"
    assert main([*home, "subject", "report", "--id", ZHANG, "--purpose", "SAR 1",
                 "--html", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    assert "src=" not in html and "href=" not in html  # self-contained: nothing external
    assert "Court 7 review chamber" in html and "张伟" in html and "Li Na" not in html
    assert "why it is necessary" in html and "by registered post, of: reasons" in html
    assert main([*home, "subject", "report", "--id", ZHANG, "--purpose", "SAR 1"]) == 0
    assert "court-7/case-1" in capsys.readouterr().out
    assert main([*home, "subject", "report", "--id", "E1", "--purpose", "SAR 1"]) == 1
    assert "error[subject.id]" in capsys.readouterr().err
