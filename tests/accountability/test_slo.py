"""Lift deadlines: latency from a lift's cause to the agency's signed receipt, late lifts
escalated once, a non-zero exit for monitoring."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from interdict.accountability import lifts
from interdict.accountability.timing import nearest_rank, parse_duration
from interdict.agencies import lifecycle
from interdict.cli import main
from interdict.cli.accountability import LATE_EXIT
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import EntryRevision
from tests.accountability.conftest import Make, events, publish, revoke, sync

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def lift(agency: str, trigger_min: float, receipt_min: float | None,
         status: str = "applied", n: int = 0) -> lifts.Lift:
    receipt_at = None if receipt_min is None else T0 + timedelta(minutes=receipt_min)
    return lifts.Lift(f"d-{agency}-{n}", agency, "court-7", f"court-7/{n}", 2, "revoke",
                      T0 + timedelta(minutes=trigger_min),
                      "delivered" if receipt_min is not None else "pending",
                      status if receipt_min is not None else None, receipt_at)


def test_measure_reports_percentiles_per_agency_and_every_late_lift() -> None:
    now = T0 + timedelta(hours=5)
    found = lifts.measure([
        lift("travel", 0, 1, n=1), lift("travel", 0, 2, n=2), lift("travel", 0, 90, n=3),
        lift("loans", 0, None, n=4),  # never answered: owed for 5 h
        lift("loans", 280, None, n=5),  # owed for 20 min: not late yet
        lift("loans", 0, 1, status="rejected", n=6),  # refused: not done, owed for 5 h
    ], now, timedelta(hours=1))
    travel = found.agencies["travel"].to_json()
    assert travel == {"lifts": 3, "done": 3, "open": 0, "p50_s": 120.0, "p95_s": 5400.0,
                      "max_s": 5400.0}
    assert found.agencies["loans"].to_json()["open"] == 3
    assert [x.directive_id for x in found.late] == ["d-loans-4", "d-loans-6", "d-travel-3"]


def test_a_receipt_before_the_trigger_counts_as_on_time() -> None:
    early = lift("travel", 10, 5)
    assert early.latency(T0 + timedelta(hours=1)) == timedelta(0)


def test_durations_and_percentiles() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("120d") == timedelta(days=120)
    for bad in ("1 hour", "0h", "-1h", "h"):
        with pytest.raises(UsageError, match="not a duration"):
            parse_duration(bad)
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([3.0, 1.0, 2.0], 0.5) == 2.0
    assert nearest_rank([float(i) for i in range(1, 101)], 0.95) == 95.0


def test_revoke_expiry_and_amend_lifts_are_timed_from_their_cause(synced: Installation,
                                                            make_entry: Make) -> None:
    expires = (utcnow() + timedelta(seconds=1.5)).replace(microsecond=0) + timedelta(seconds=1)
    publish(synced, make_entry(entry_id="court-7/short", measures=[{"type": "credit.loan"}],
                               expires_at=expires.isoformat().replace("+00:00", "Z")),
            make_entry(entry_id="court-7/case-1", op="amend", revision=2,
                       measures=[{"type": "travel.air"}]))  # loans no longer concerned
    sync(synced)
    time.sleep(max((expires - utcnow()).total_seconds(), 0) + 0.1)
    sync(synced)
    with transaction(synced.db) as session:
        found = {(x.agency, x.entry_id): x for x in lifts.load(session)}
        accepted = session.execute(sa.select(EntryRevision.accepted_at).where(
            EntryRevision.entry_id == "court-7/case-2", EntryRevision.revision == 2)
        ).scalar_one()
    assert {k: x.cause for k, x in found.items()} == {
        ("travel", "court-7/case-2"): "revoke", ("loans", "court-7/short"): "expiry",
        ("loans", "court-7/case-1"): "amend"}
    revoked, expired = found[("travel", "court-7/case-2")], found[("loans", "court-7/short")]
    assert revoked.done and revoked.receipt_status == "applied"
    # the revoke's effective_from (2026-11-01) is before its acceptance: acceptance is the cause
    assert revoked.trigger == accepted
    assert revoked.receipt_at is not None and revoked.receipt_at >= accepted
    # an expiry is owed from the moment the entry expired, however late sync ran after it
    assert expired.trigger == expires and expired.done


def test_an_undelivered_lift_is_late_and_escalated_once(installation: Installation,
                                                         prefect_api: str,
                                                         make_entry: Make) -> None:
    publish(installation, make_entry(entry_id="court-7/a"))
    sync(installation)
    lifecycle.disable(installation, "loans")  # the lift waits in the outbox
    publish(installation, revoke(make_entry, "court-7/a"))
    sync(installation)
    later = utcnow() + timedelta(hours=2)
    with transaction(installation.db) as session:
        first = lifts.report(session, later, timedelta(hours=1))
    assert [(x.agency, x.status, x.done) for x in first.late] == [("loans", "pending", False)]
    assert first.escalated == [first.late[0].directive_id]
    with transaction(installation.db) as session:
        again = lifts.report(session, later + timedelta(hours=1), timedelta(hours=1))
    assert [x.directive_id for x in again.late] == first.escalated and again.escalated == []
    (late,) = events(installation, "lift.late")
    assert late["refs"]["directive_id"] == first.escalated[0]
    assert late["outcome"] == "undelivered" and late["refs"]["agency"] == "loans"
    assert late["refs"]["seconds"] >= 7200
    assert set(late["refs"]) <= {"directive_id", "agency", "issuer", "entry_id", "revision",
                                 "cause", "seconds"}  # identifiers only, no personal data
    with transaction(installation.db) as session:  # within the deadline now: nothing late
        assert lifts.report(session, utcnow(), timedelta(hours=1)).late == []


def test_slo_command_exits_4_while_a_lift_is_late(installation: Installation,
                                                  prefect_api: str, make_entry: Make,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(installation.home.root)]
    assert main([*home, "slo"]) == 0
    assert "no lift was issued yet" in capsys.readouterr().out
    publish(installation, make_entry(entry_id="court-7/a"))
    sync(installation)
    lifecycle.disable(installation, "travel")
    publish(installation, revoke(make_entry, "court-7/a"))
    sync(installation)
    capsys.readouterr()
    assert main([*home, "slo", "--json"]) == 0  # owed for less than an hour
    report = json.loads(capsys.readouterr().out)
    assert report["agencies"]["loans"]["done"] == 1 and report["agencies"]["travel"]["open"] == 1
    time.sleep(1.1)
    assert main([*home, "slo", "--deadline", "1s", "--json"]) == LATE_EXIT
    report = json.loads(capsys.readouterr().out)
    late = {x["agency"]: x for x in report["late"]}
    assert not late["travel"]["done"]  # never delivered: late, and still owed
    # loans' lift was delivered in the sync: late too only if that took over the 1 s deadline
    # (it can, on a loaded machine), and then as done
    assert set(late) <= {"travel", "loans"} and late.get("loans", {"done": True})["done"]
    assert sorted(report["escalated"]) == sorted(x["directive_id"] for x in report["late"])
    assert main([*home, "slo", "--deadline", "soon"]) == 1
    assert "error[duration.invalid]" in capsys.readouterr().err

