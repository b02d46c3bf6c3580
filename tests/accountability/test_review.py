"""Review before expiry: entries due within a window, per issuer, each warned once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from interdict.accountability import policy, review
from interdict.cli import main
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from tests.accountability.conftest import Make, events, publish, sync
from tests.accountability.test_policy import example


def iso_in(days: int) -> str:
    return (utcnow() + timedelta(days=days)).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


def test_entries_due_are_listed_per_issuer_and_warned_once(
        installation: Installation, prefect_api: str, make_entry: Make,
        capsys: pytest.CaptureFixture[str]) -> None:
    publish(installation,
            make_entry(entry_id="court-7/soon", expires_at=iso_in(30)),
            make_entry(entry_id="court-7/later", measures=[{"type": "travel.air"}],
                       expires_at=iso_in(400)),
            make_entry(entry_id="court-7/loan", measures=[{"type": "credit.loan"}],
                       expires_at=iso_in(700)))
    sync(installation)
    with transaction(installation.db) as session:  # the example reviews credit.loan yearly
        policy.apply(session, example(), utcnow())
    home = ["--home", str(installation.home.root)]
    assert main([*home, "review", "due", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (listed,) = report["issuers"].values()
    assert [(d["entry_id"], d["kind"]) for d in listed] == [("court-7/soon", "expiry")]
    assert listed[0]["warned_now"] and 28 <= listed[0]["days_left"] <= 30
    with transaction(installation.db) as session:
        wide = review.report(session, utcnow(), timedelta(days=366))
    assert [(d["entry_id"], d["kind"], d["warned_now"]) for d in wide["issuers"]["court-7"]] == [
        ("court-7/soon", "expiry", False), ("court-7/loan", "review", True)]
    warned = events(installation, review.DUE)
    assert [(e["refs"]["entry_id"], e["refs"]["kind"]) for e in warned] == [
        ("court-7/soon", "expiry"), ("court-7/loan", "review")]
    # an amend (a new assessment) restarts the review clock and is warned about afresh
    publish(installation, make_entry(entry_id="court-7/soon", op="amend", revision=2,
                                     expires_at=iso_in(60)))
    sync(installation)
    with transaction(installation.db) as session:
        again = review.report(session, utcnow(), timedelta(days=120))
    assert again["warned"] == 1
    assert again["issuers"]["court-7"][0]["revision"] == 2
    assert main([*home, "review", "due", "--within", "1d"]) == 0
    assert "nothing due within 1 days" in capsys.readouterr().out
