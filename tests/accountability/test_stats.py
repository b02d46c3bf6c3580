"""Public statistics: counts by type, issuer, agency, month and reason; no personal data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interdict.accountability import pages
from interdict.cli import main
from interdict.installation import Installation
from tests.accountability.conftest import Make, publish, sync
from tests.accountability.test_subject import PERSONAL


def test_stats_count_measures_lifts_and_refusals(synced: Installation, make_entry: Make,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    publish(synced, make_entry(entry_id="court-7/bad", redress=None))  # refused
    sync(synced)
    assert main(["--home", str(synced.home.root), "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    active = stats["active"]
    assert active["entries"] == 2  # case-1 and case-3; case-2 was revoked
    assert active["by_type"] == {"credit.loan": 2, "travel.air": 2}
    assert active["by_issuer"] == {"court-7": 2}
    assert active["by_agency"] == {"loans": 2, "travel": 2}
    (month,) = stats["over_time"].values()
    assert month == {"imposed": 3, "revoked": 1, "expired": 0}
    assert stats["refusals"] == {"schema.violation": 1}
    assert stats["lift_latency"]["travel"]["done"] == 1
    assert stats["late_lifts"]["by_agency"] == {}
    text = json.dumps(stats, ensure_ascii=False)
    assert not [p for p in PERSONAL if p in text] and "court-7/case" not in text


def test_stats_page_is_self_contained_with_charts(synced: Installation, tmp_path: Path) -> None:
    page = tmp_path / "stats.html"
    assert main(["--home", str(synced.home.root), "stats", "--html", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") >= 5 and "<script" not in html and "href=" not in html
    assert "credit.loan" in html and not [p for p in PERSONAL if p in html]


def test_bar_chart_scales_bars_to_the_largest_value() -> None:
    svg = pages.bar_chart("t", {"a": 2, "b": 1})
    widths = [float(part.split("'")[0]) for part in svg.split("width='")[2:]]
    assert widths[0] == pytest.approx(2 * widths[1])
    assert "nothing to show" in pages.bar_chart("t", {})
    assert "&lt;b&gt;" in pages.bar_chart("t", {"<b>": 1})  # labels are escaped
