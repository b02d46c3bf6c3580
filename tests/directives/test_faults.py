"""Fault injection: agencies that fail, time out, lie, vanish, and workers that are killed.

Every case runs on SQLite and PostgreSQL against a real HTTP agency on 127.0.0.1 (the
reference receiver with faults the test switches on), and ends with the same invariants
(``assert_exactly_once``): each directive delivered once in effect or dead-lettered with a
reason, none lost, every attempt in the audit log.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interdict.agencies import simulated
from interdict.cli import main
from interdict.directives import throttle
from interdict.directives.delivery import Delivered
from interdict.directives.throttle import DeliveryPolicy, RateLimiter
from interdict.flows.dispatch import deliver_once, plan_once
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.keys import offload
from interdict.storage import transaction
from interdict.storage.models import Receipt
from tests.directives.conftest import (
    AGENCY,
    Clock,
    WebhookAgency,
    assert_exactly_once,
    directives,
    events,
    publish,
)

Make = Callable[..., dict[str, Any]]
MakeAgency = Callable[..., WebhookAgency]


def route(inst: Installation) -> None:
    home = str(inst.home.root)
    while ingest_once(home).read:
        pass
    while plan_once(home).causes:
        pass


def deliver(inst: Installation, clock: Clock, agency: str = AGENCY) -> Delivered:
    return deliver_once(str(inst.home.root), agency, clock)


def entries(make: Make, n: int, **changes: Any) -> list[dict[str, Any]]:
    return [make(entry_id=f"court-7/case-{i}", measures=[{"type": "travel.air"}], **changes)
            for i in range(n)]


def rounds(inst: Installation, clock: Clock, n: int, step_s: float = 10) -> list[Delivered]:
    """Deliver ``n`` times, moving the clock past the longest backoff between runs."""
    outcomes = []
    for _ in range(n):
        outcomes.append(deliver(inst, clock))
        clock.advance(step_s)
    return outcomes


def test_an_agency_failing_half_its_calls(installation: Installation, make_entry: Make,
                                          webhook_agency: MakeAgency, clock: Clock) -> None:
    hooks = webhook_agency(breaker_failures=1000)
    coin = random.Random(4)
    hooks.receiver.fault = lambda directive_id, n: "500" if coin.random() < 0.5 else "ok"
    publish(installation, *entries(make_entry, 8))
    route(installation)
    rounds(installation, clock, 9)
    assert_exactly_once(installation, hooks)
    rows = directives(installation)
    assert sum(r.attempts for r in rows) > len(rows)  # the faults really happened
    assert any(r.status == "delivered" and r.attempts > 1 for r in rows)
    failures = [e for e in events(installation) if e["action"] == "delivery.failed"]
    assert failures and {e["outcome"] for e in failures} == {"webhook.status"}


def test_an_agency_that_times_out_and_applied_anyway_applies_once(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock) -> None:
    hooks = webhook_agency(timeout_s=0.3)
    hooks.receiver.slow_s = 1.0
    hooks.receiver.fault = lambda directive_id, n: "slow" if n == 1 else "ok"
    publish(installation, *entries(make_entry, 2))
    route(installation)
    first = deliver(installation, clock)
    assert (first.failed, first.delivered) == (2, 0)
    assert all(r.status == "pending" and r.last_error.startswith("webhook.timeout")
               for r in directives(installation))
    # the agency applied both, though we gave up waiting for its answers
    assert _wait_for(lambda: len(hooks.receiver.received()) == 2)
    clock.advance(10)
    second = deliver(installation, clock)
    assert second.delivered == 2
    with transaction(installation.db) as session:
        statuses = set(session.execute(sa.select(Receipt.status)
                                       .where(Receipt.agency == AGENCY)).scalars())
    assert statuses == {"duplicate"}
    assert_exactly_once(installation, hooks)


def test_an_agency_answering_500_then_succeeding(installation: Installation, make_entry: Make,
                                                 webhook_agency: MakeAgency,
                                                 clock: Clock) -> None:
    hooks = webhook_agency(breaker_failures=100)
    hooks.receiver.fault = lambda directive_id, n: "500" if n <= 2 else "ok"
    publish(installation, *entries(make_entry, 3))
    route(installation)
    assert deliver(installation, clock).failed == 3
    # backoff: nothing is due again until its time has come
    assert deliver(installation, clock).attempted == 0
    for row in directives(installation):
        assert row.next_attempt_at is not None
        assert 0.5 <= (row.next_attempt_at - clock()).total_seconds() <= 1.0
    clock.advance(10)
    assert deliver(installation, clock).failed == 3
    clock.advance(10)
    assert deliver(installation, clock).delivered == 3
    assert {r.attempts for r in directives(installation)} == {3}
    assert_exactly_once(installation, hooks)


@pytest.mark.parametrize(("fault", "code"), [("bad-receipt", "signature.invalid"),
                                             ("foreign-receipt", "receipt.unknown_key")])
def test_a_receipt_with_a_bad_signature_is_dead_lettered_then_retried(
        fault: str, code: str, installation: Installation, make_entry: Make,
        webhook_agency: MakeAgency, clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    hooks = webhook_agency(max_attempts=3, breaker_failures=100)
    hooks.receiver.fault = lambda directive_id, n: fault
    publish(installation, *entries(make_entry, 2))
    route(installation)
    home = ["--home", str(installation.home.root)]
    assert main([*home, "dead-letter", "list"]) == 0
    assert "no dead letters" in capsys.readouterr().out
    outcomes = rounds(installation, clock, 4)
    assert sum(o.dead for o in outcomes) == 2
    assert all(r.status == "dead" and r.last_error.startswith(code)
               for r in directives(installation))
    assert_exactly_once(installation, hooks)
    assert main([*home, "dead-letter", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["directive_id"] for d in listed} == {r.directive_id for r in
                                                   directives(installation)}
    assert all(d["attempts"] == 3 and code in d["last_error"] for d in listed)

    hooks.receiver.fault = lambda directive_id, n: "ok"  # the agency fixed its key
    assert main([*home, "dead-letter", "retry", "--agency", AGENCY, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["requeued"]) == 2
    assert deliver(installation, clock).delivered == 2
    assert_exactly_once(installation, hooks)
    assert len(hooks.receiver.received()) == 2  # applied on the first attempt, once
    requeued = [e for e in events(installation) if e["action"] == "directive.requeued"]
    assert len(requeued) == 2 and requeued[0]["actor"].startswith("operator:")


@pytest.mark.parametrize("checks", ["0", "1", "dask"])
def test_bad_receipts_in_a_batch_checked_by_a_worker_fail_alone(
        checks: str, checks_on: Callable[[str], None], installation: Installation,
        make_entry: Make, webhook_agency: MakeAgency, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch big enough for the signature worker or the Dask cluster (keys/offload.py): its
    hint covers the good receipts only, and the bad ones fail as they do when checked in
    place."""
    checks_on(checks)
    started: list[offload.Pending] = []
    check = offload.check_elsewhere
    monkeypatch.setattr(offload, "check_elsewhere", lambda tokens, typ, keys: (
        started.append(check(tokens, typ, keys)), started[-1])[1])
    hooks = webhook_agency(max_attempts=3, breaker_failures=1000)
    publish(installation, *entries(make_entry, 80))
    route(installation)
    bad = {r.directive_id for r in directives(installation)[::10]}
    hooks.receiver.fault = lambda directive_id, n: "bad-receipt" if directive_id in bad else "ok"
    outcome = deliver(installation, clock)
    # the worker verified exactly the good receipts; without one, nothing went to it
    hints = [pending.result() for pending in started]
    assert sum(len(h.keys_by_token) for h in hints) == (72 if checks != "0" else 0)
    assert (outcome.delivered, outcome.failed) == (72, 8)
    assert {r.directive_id for r in directives(installation) if r.status == "pending"} == bad
    clock.advance(10)
    rounds(installation, clock, 3)  # the bad ones run out of attempts
    dead = [r for r in directives(installation) if r.status == "dead"]
    assert {r.directive_id for r in dead} == bad
    assert all(r.last_error.startswith("signature.invalid") for r in dead)
    assert_exactly_once(installation, hooks)


def test_an_agency_down_for_a_whole_run_then_back(installation: Installation,
                                                  make_entry: Make, webhook_agency: MakeAgency,
                                                  clock: Clock) -> None:
    hooks = webhook_agency(start=False, breaker_failures=3, batch_size=2)
    publish(installation, *entries(make_entry, 5))
    route(installation)
    first = deliver(installation, clock)
    # a batch of two failed, then one more reached the threshold and the circuit opened:
    # the other two were never tried
    assert (first.attempted, first.failed, first.circuit_open) == (3, 3, True)
    clock.advance(10)
    assert deliver(installation, clock).attempted == 0  # still open: not called at all
    hooks.start()
    clock.advance(30)
    back = deliver(installation, clock)
    assert back.delivered == 5 and not back.circuit_open
    log = [e["action"] for e in events(installation)]
    assert log.count("circuit.opened") == 1 and log.count("circuit.closed") == 1
    assert log.index("circuit.opened") < log.index("circuit.closed")
    failures = {e["outcome"] for e in events(installation) if e["action"] == "delivery.failed"}
    assert failures == {"webhook.unreachable"}
    assert_exactly_once(installation, hooks, all_reached=False)


def test_a_half_open_probe_that_fails_opens_the_circuit_again(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock) -> None:
    hooks = webhook_agency(breaker_failures=2, batch_size=2)
    hooks.receiver.fault = lambda directive_id, n: "500"
    publish(installation, *entries(make_entry, 3))
    route(installation)
    assert deliver(installation, clock).attempted == 2
    clock.advance(30)
    probe = deliver(installation, clock)
    assert (probe.attempted, probe.circuit_open) == (1, True)
    opened = [e for e in events(installation) if e["action"] == "circuit.opened"]
    assert [e["outcome"] for e in opened] == ["tripped", "probe_failed"]


def test_a_lift_goes_through_failures_and_never_overtakes_its_imposition(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock) -> None:
    hooks = webhook_agency()
    publish(installation, make_entry(measures=[{"type": "travel.air"}]))
    route(installation)
    (impose,) = directives(installation)
    failing = {impose.directive_id: 1}
    hooks.receiver.fault = lambda d, n: "500" if n <= failing.get(d, 0) else "ok"
    assert deliver(installation, clock).failed == 1
    publish(installation, make_entry(op="revoke", revision=2, subject=None, measures=None,
                                     expires_at=None, redress=None, listed_at=None,
                                     reason="judgment performed"))
    route(installation)
    lift = directives(installation)[-1]
    assert lift.action == "lift"
    failing[lift.directive_id] = 2
    rounds(installation, clock, 4)
    assert list(hooks.receiver.requests) == [impose.directive_id, lift.directive_id]
    assert {r.directive_id: r.status for r in directives(installation)} == {
        impose.directive_id: "delivered", lift.directive_id: "delivered"}
    assert hooks.receiver.holdings() == []
    assert len(hooks.receiver.requests[lift.directive_id]) == 3
    assert_exactly_once(installation, hooks)


def test_one_slow_agency_never_holds_back_another(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        prefect_api: str) -> None:
    """The real sync flow: the webhook agency holds its request open; travel is delivered
    meanwhile, before the webhook agency has answered."""
    from interdict import flows

    hooks = webhook_agency(timeout_s=60)
    hooks.receiver.fault = lambda directive_id, n: "hold-after"
    publish(installation, make_entry(measures=[{"type": "travel.air"}]))
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(
        report=flows.sync(str(installation.home.root)).to_json()))
    runner.start()
    try:
        assert hooks.receiver.arrived.wait(120), "the webhook agency was never called"
        travel_delivered = _wait_for(lambda: [r.status for r in directives(installation,
                                                                           "travel")]
                                     == ["delivered"])
        hooks_pending = [r.status for r in directives(installation)] == ["pending"]
    finally:
        hooks.receiver.release.set()
        runner.join(120)
    assert travel_delivered, "travel waited for the slow agency"
    assert hooks_pending
    delivered = {a: d["delivered"] for a, d in result["report"]["directives"].items()}
    assert (delivered["travel"], delivered[AGENCY]) == (1, 1)


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


# -- throttling, as pure logic ---------------------------------------------------------------

def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = DeliveryPolicy.from_settings({"backoff_base_s": 2, "backoff_cap_s": 60})
    rng = random.Random(1)
    for attempt, step in ((1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (30, 60), (500, 60)):
        waits = [policy.backoff(attempt, rng).total_seconds() for _ in range(50)]
        assert all(step / 2 <= w <= step for w in waits), (attempt, waits)
        assert len(set(waits)) > 1  # jittered
    defaults = DeliveryPolicy.from_settings({})
    assert (defaults.backoff_base.total_seconds(), defaults.max_attempts) == (30, 8)


def test_a_lease_outlasts_the_slowest_batch() -> None:
    policy = DeliveryPolicy.from_settings({"batch_size": 100, "timeout_s": 10})
    assert policy.lease.total_seconds() >= 100 * 10
    assert DeliveryPolicy.from_settings({"lease_s": 5}).lease.total_seconds() == 5


def test_the_rate_limit_paces_calls() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4, clock=lambda: now[0], sleep=sleep)
    policy = DeliveryPolicy.from_settings({"rate_per_s": 4, "batch_size": 500})
    assert policy.claim_size == 4
    for _ in range(5):  # 20 directives at 4/s: the first 4 are the burst, then 1 s per call
        limiter.acquire(policy.claim_size)
    assert slept == pytest.approx([1.0, 1.0, 1.0, 1.0])
    now[0] += 10  # idle: the bucket refills to one second's worth, no more
    assert limiter.acquire(4) == 0 and limiter.acquire(1) == pytest.approx(0.25)
    assert throttle.limiter_for("x", None) is None
    assert throttle.limiter_for("x", 2.0) is throttle.limiter_for("x", 2.0)


def test_a_rate_limited_agency_gets_one_call_per_second_worth(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock) -> None:
    hooks = webhook_agency(rate_per_s=50)
    publish(installation, *entries(make_entry, 3))
    route(installation)
    assert deliver(installation, clock).delivered == 3
    assert_exactly_once(installation, hooks)


# -- workers killed mid-dispatch -------------------------------------------------------------

CHILD = r"""
import os, signal, sys
from interdict.directives import delivery, outbox

def die(*args):
    os.kill(os.getpid(), signal.SIGKILL)

point = sys.argv[1]
if point == "outbox":  # written, not committed
    real_flush = outbox._flush
    def flush(session, rows, events):
        real_flush(session, rows, events)
        session.flush()
        die()
    outbox._flush = flush
elif point == "record":  # receipts recorded, not committed
    real_record = delivery._record
    def record(session, *args):
        real_record(session, *args)
        session.flush()
        die()
    delivery._record = record
from interdict.cli import main
sys.exit(main(["sync", "--json"]))
"""

KILL_POINTS = {
    "while writing directives to the outbox": ("outbox", None),
    "with a request in flight, before the agency stored it": ("http", "hold"),
    "after the agency stored it, before its receipt came back": ("http", "hold-after"),
    "while recording receipts, before the commit": ("record", None),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_worker_killed_during_dispatch_loses_and_doubles_nothing(
        point: str, installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        prefect_api: str, tmp_path: Path) -> None:
    """A real `interdict sync` process is SIGKILLed at ``point``; sync runs again."""
    from interdict import flows

    hooks = webhook_agency()
    where, fault = KILL_POINTS[point]
    if fault is not None:
        hooks.receiver.fault = lambda d, n: fault if len(hooks.receiver.requests) == 2 \
            and n == 1 and not hooks.receiver.arrived.is_set() else "ok"
    publish(installation, *entries(make_entry, 3))
    env = {**os.environ, "INTERDICT_HOME": str(installation.home.root),
           "PREFECT_API_URL": prefect_api}
    child = subprocess.Popen([sys.executable, "-c", CHILD, where], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if where == "http":
            assert hooks.receiver.arrived.wait(180), child.stderr and child.stderr.read(2000)
            child.send_signal(signal.SIGKILL)
        child.wait(180)
    finally:
        child.kill()
        hooks.receiver.release.set()
    assert child.returncode == -signal.SIGKILL, child.stderr and child.stderr.read().decode()
    hooks.receiver.fault = lambda d, n: "ok"

    report = flows.sync(str(installation.home.root)).to_json()
    assert report["directives"][AGENCY]["dead_lettered"] == 0
    assert_exactly_once(installation, hooks, crashed=True)
    assert len(directives(installation)) == 3
    _assert_travel_applied_each_once(installation)
    if fault is not None:
        assert any(e["action"] == "delivery.lease_released" for e in events(installation))


def _assert_travel_applied_each_once(inst: Installation) -> None:
    rows = directives(inst, "travel")
    assert len(rows) == 3 and {r.status for r in rows} == {"delivered"}
    adapter = inst.adapter("travel")
    assert isinstance(adapter, simulated.SimulatedAgency)
    with adapter.db.connect() as conn:
        stored = list(conn.execute(sa.select(simulated.received.c.directive_id)).scalars())
    assert sorted(stored) == sorted(r.directive_id for r in rows)

