"""The objection register: receipt and decision recorded once, audited without personal data,
counted in the public statistics and shown in the person's own report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interdict.accountability import objections, stats, subject
from interdict.cli import main
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from tests.accountability.conftest import ZHANG, events
from tests.accountability.test_subject import PERSONAL

DAY = timedelta(days=1)
T0 = datetime(2026, 10, 1, 9, tzinfo=UTC)


def _receive(inst: Installation, entry_id: str, at: datetime) -> int:
    with transaction(inst.db) as session:
        row = objections.receive(session, "court-7", entry_id, at, utcnow(), "operator:ana")
        assert row.id is not None
        return row.id


def _decide(inst: Installation, objection_id: int, outcome: str, at: datetime) -> None:
    with transaction(inst.db) as session:
        objections.decide(session, objection_id, outcome, at, utcnow(), "operator:ana")


def test_an_objection_is_received_then_decided_and_both_are_audited(
        synced: Installation) -> None:
    first = _receive(synced, "court-7/case-1", T0)
    _decide(synced, first, "rejected", T0 + 12 * DAY)
    with transaction(synced.db) as session:
        (row,) = objections.listed(session)
        assert objections.listed(session, open_only=True) == []
        item = objections.to_json(row, utcnow(), objections.Deadline())
    assert item == {**item, "entry_id": "court-7/case-1", "outcome": "rejected", "days": 12.0,
                    "overdue": False, "received_at": "2026-10-01T09:00:00Z"}
    (received,) = events(synced, objections.RECEIVED)
    (decided,) = events(synced, objections.DECIDED)
    assert received["actor"] == "operator:ana"
    assert received["refs"] == {"issuer": "court-7", "entry_id": "court-7/case-1",
                                "objection": first, "received_at": "2026-10-01T09:00:00Z"}
    assert decided["outcome"] == "rejected"
    assert decided["refs"] == {"issuer": "court-7", "entry_id": "court-7/case-1",
                               "objection": first, "days": 12.0}
    text = json.dumps([received, decided], ensure_ascii=False)
    assert not [p for p in PERSONAL if p in text]


def test_refusals_leave_nothing_recorded(synced: Installation) -> None:
    with pytest.raises(UsageError) as unknown:
        _receive(synced, "court-7/case-99", T0)
    assert unknown.value.code == "objection.unknown_entry"
    first = _receive(synced, "court-7/case-1", T0)
    with pytest.raises(UsageError) as early:
        _decide(synced, first, "upheld", T0 - DAY)
    assert early.value.code == "objection.before_receipt"
    with pytest.raises(UsageError) as bad:
        _decide(synced, first, "dismissed", T0 + DAY)
    assert bad.value.code == "objection.outcome"
    with pytest.raises(UsageError) as missing:
        _decide(synced, first + 100, "upheld", T0 + DAY)
    assert missing.value.code == "objection.unknown"
    _decide(synced, first, "upheld", T0 + DAY)
    with pytest.raises(UsageError) as twice:
        _decide(synced, first, "rejected", T0 + 2 * DAY)
    assert twice.value.code == "objection.decided"
    with transaction(synced.db) as session:
        (row,) = objections.listed(session)
    assert (row.outcome, row.decided_at) == ("upheld", T0 + DAY)
    assert len(events(synced, objections.RECEIVED)) == 1
    assert len(events(synced, objections.DECIDED)) == 1


def test_stats_count_objections_days_and_overdue(synced: Installation) -> None:
    a = _receive(synced, "court-7/case-1", T0)
    b = _receive(synced, "court-7/case-3", T0 + 2 * DAY)
    c = _receive(synced, "court-7/case-2", datetime(2026, 11, 3, tzinfo=UTC))
    _receive(synced, "court-7/case-1", datetime(2026, 11, 10, tzinfo=UTC))  # still open
    _decide(synced, a, "rejected", T0 + 10 * DAY)
    _decide(synced, b, "partly_upheld", T0 + 2 * DAY + 20 * DAY)
    _decide(synced, c, "withdrawn", datetime(2026, 11, 7, tzinfo=UTC))
    now = datetime(2026, 11, 20, tzinfo=UTC)  # the open one is 10 days old
    with transaction(synced.db) as session:
        found = stats.collect(session, now)["objections"]
        strict = stats.collect(session, now, objection_deadline=objections.Deadline(7))
    assert found == {"review_days": 15, "received_by_month": {"2026-10": 2, "2026-11": 2},
                     "decided_by_outcome": {"upheld": 0, "partly_upheld": 1, "rejected": 1,
                                            "withdrawn": 1},
                     "median_days": 10.0, "max_days": 20.0, "decided_late": 1, "open": 1,
                     "overdue": 0}
    assert strict["objections"]["overdue"] == 1
    assert strict["objections"]["decided_late"] == 2


def test_list_open_exits_4_while_one_is_overdue(synced: Installation, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(synced.home.root)]
    recent = (utcnow() - 3 * DAY).isoformat()
    assert main([*home, "objection", "add", "court-7/case-1", "--received", recent]) == 0
    assert main([*home, "objection", "list", "--open", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["overdue"] is False and item["decided_at"] is None
    assert main([*home, "objection", "list", "--open", "--review-days", "2"]) == 4
    old = (utcnow() - 20 * DAY).isoformat()
    assert main([*home, "objection", "add", "court-7/case-3", "--received", old]) == 0
    assert main([*home, "objection", "list", "--open"]) == 4
    assert "1 objection(s) undecided for more than 15 days" in capsys.readouterr().err
    assert main([*home, "objection", "decide", "2", "--outcome", "upheld"]) == 0
    assert main([*home, "objection", "list", "--open"]) == 0
    assert main([*home, "objection", "list"]) == 0  # all, none overdue any more
    assert main([*home, "objection", "decide", "2", "--outcome", "upheld"]) == 1
    assert "error[objection.decided]:" in capsys.readouterr().err
    assert main([*home, "objection", "add", "court-7/nope"]) == 1
    assert main([*home, "objection", "add", "case-1"]) == 1
    assert main([*home, "objection", "add", "court-7/case-1", "--received", "yesterday"]) == 1
    errors = capsys.readouterr().err
    assert "error[objection.unknown_entry]:" in errors and "error[objection.entry]:" in errors
    assert "error[objection.time]:" in errors
    assert main([*home, "stats", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["objections"]
    assert figures["open"] == 1 and figures["decided_by_outcome"]["upheld"] == 1
    assert main([*home, "objection", "add", "court-7/case-2", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added == {**added, "id": 3, "entry_id": "court-7/case-2", "outcome": None}
    assert main([*home, "stats"]) == 0
    assert "objections decided by outcome" in capsys.readouterr().out
    page = tmp_path / "stats.html"
    assert main([*home, "stats", "--html", str(page), "--review-days", "30"]) == 0
    html = page.read_text(encoding="utf-8")
    assert "<h2>Objections</h2>" in html and "review within 30 days" in html


def test_the_subject_report_shows_objections_to_that_persons_entries_only(
        synced: Installation, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = _receive(synced, "court-7/case-1", T0)
    _decide(synced, mine, "withdrawn", T0 + 3 * DAY)
    _receive(synced, "court-7/case-3", T0)  # Li Na's entry
    report = subject.report(synced, subject.SubjectId.parse(ZHANG), "SAR 2026-120")
    by_entry = {m["entry_id"]: m for m in report["measures"]}
    assert by_entry["court-7/case-1"]["objections"] == [
        {"received_at": "2026-10-01T09:00:00Z", "decided_at": "2026-10-04T09:00:00Z",
         "outcome": "withdrawn"}]
    assert by_entry["court-7/case-2"]["objections"] == []
    assert "court-7/case-3" not in by_entry
    home = ["--home", str(synced.home.root)]
    page = tmp_path / "report.html"
    assert main([*home, "subject", "report", "--id", ZHANG, "--purpose", "SAR 2026-121",
                 "--html", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.count("Your objections") == 1 and "withdrawn" in html
    assert main([*home, "subject", "report", "--id", ZHANG, "--purpose", "SAR 2026-122"]) == 0
    assert "withdrawn" in capsys.readouterr().out
