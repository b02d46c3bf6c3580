"""Delivery alongside routing (flows/handover.py): it follows routing batch by batch, ends
when routing does (a crash included), and delivers everything once."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from interdict import flows, issuers
from interdict.agencies import simulated
from interdict.directives import Delivered
from interdict.flows import handover
from interdict.flows.dispatch import deliver_once, plan_once
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.storage import transaction
from interdict.storage.models import Directive

Make = Callable[..., dict[str, Any]]


def publish_travel_only(inst: Installation, make_entry: Make, count: int) -> str:
    inst.public.publish(issuers.sign(inst, "court-7", [
        make_entry(entry_id=f"court-7/{i}", measures=[{"type": "travel.air"}])
        for i in range(count)]))
    home = str(inst.home.root)
    while ingest_once(home, 10).read:
        pass
    return home


def delivered(inst: Installation) -> list[str]:
    with transaction(inst.db) as session:
        return list(session.execute(sa.select(Directive.directive_id)
                                    .where(Directive.status == "delivered")).scalars())


def received(inst: Installation) -> list[str]:
    adapter = inst.adapter("travel")
    assert isinstance(adapter, simulated.SimulatedAgency)
    with adapter.db.connect() as conn:
        return list(conn.execute(sa.select(simulated.received.c.directive_id)).scalars())


def until(condition: Callable[[], bool], what: str) -> None:
    """Liveness, not speed: fails only if it never happens."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def test_delivery_follows_routing_batch_by_batch(installation: Installation,
                                                 make_entry: Make) -> None:
    home = publish_travel_only(installation, make_entry, 30)
    with ThreadPoolExecutor(1) as pool:
        with handover.routing(home) as routing:
            following = pool.submit(handover.follow, routing,
                                    partial(deliver_once, home, "travel"))
            for routed in (10, 20):
                assert plan_once(home, 10).causes == 10
                # delivered while routing is still under way
                until(lambda n=routed: len(delivered(installation)) == n,  # type: ignore[misc]
                      f"{routed} delivered")
            assert plan_once(home, 10).causes == 10
        outcome = following.result(timeout=60)
    assert (outcome.delivered, outcome.attempted, outcome.failed) == (30, 30, 0)
    assert sorted(received(installation)) == sorted(delivered(installation))  # each once


def test_an_open_circuit_stops_following_while_routing_goes_on() -> None:
    passes: list[Delivered] = []

    def deliver() -> Delivered:
        passes.append(Delivered(attempted=2, failed=2, circuit_open=True))
        return passes[-1]

    with handover.routing("a-home") as routing:
        outcome = handover.follow(routing, deliver)
    assert len(passes) == 1
    assert (outcome.attempted, outcome.failed, outcome.circuit_open) == (2, 2, True)


def test_following_a_routing_that_has_ended_is_one_pass() -> None:
    with handover.routing("another-home") as routing:
        pass
    passes = []
    outcome = handover.follow(routing, lambda: passes.append(1) or Delivered(delivered=3))
    assert passes == [1] and outcome.delivered == 3


def test_a_delivery_ends_with_its_own_routing_not_another_of_the_same_home() -> None:
    """Two routings of one home in one process: the deliveries following the first end when
    it does, with a last pass, while the second goes on."""
    passes: list[str] = []
    with ThreadPoolExecutor(1) as pool, handover.routing("home") as second:
        with handover.routing("home") as first:
            following = pool.submit(handover.follow, first,
                                    lambda: passes.append("pass") or Delivered(delivered=1))
            until(lambda: passes == ["pass"], "the first pass")
            handover.routed("home")  # a batch: the follower looks again
            until(lambda: len(passes) == 2, "a pass after the batch")
        outcome = following.result(timeout=60)  # the second routing is still under way
        assert second != first
    assert outcome.delivered == 3  # the first pass, one per batch, the last


@pytest.mark.usefixtures("prefect_api")
def test_a_crash_in_routing_ends_the_deliveries_following_it(
        installation: Installation, make_entry: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sync fails, the deliveries following its routing end (no run hangs) with the
    first batch delivered, and the next sync delivers the rest, each directive once."""
    home = publish_travel_only(installation, make_entry, 20)
    dispatch = importlib.import_module("interdict.flows.dispatch")  # the module, not the flow
    real_plan, calls = dispatch.plan, []

    def crash_on_the_second_batch(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return real_plan(*args)

    monkeypatch.setattr(dispatch, "plan", crash_on_the_second_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        flows.sync(home, 10)
    assert len(delivered(installation)) == 10  # the batch routed before the crash
    monkeypatch.undo()
    report = flows.sync(home, 10).to_json()
    assert report["directives"]["travel"]["delivered"] == 10
    assert len(delivered(installation)) == 20
    assert sorted(received(installation)) == sorted(delivered(installation))
