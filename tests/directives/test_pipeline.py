"""Delivery sends the next batch while it records the last, but only after a batch that went
through in full (directives/delivery.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from interdict.directives import delivery
from interdict.installation import Installation
from interdict.storage import reading
from interdict.storage.models import Directive
from tests.directives.conftest import (
    Clock,
    WebhookAgency,
    assert_exactly_once,
    directives,
    publish,
)
from tests.directives.test_faults import deliver, entries, route

Make = Callable[..., dict[str, Any]]
MakeAgency = Callable[..., WebhookAgency]


def _four_in_batches_of_two(installation: Installation, make_entry: Make,
                            webhook_agency: MakeAgency, **settings: Any) -> WebhookAgency:
    """Four directives routed to one HTTP agency that takes them two per call."""
    hooks = webhook_agency(batch_size=2, **settings)
    publish(installation, *entries(make_entry, 4))
    route(installation)
    return hooks


def test_the_next_batch_is_sent_while_the_last_is_recorded(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = _four_in_batches_of_two(installation, make_entry, webhook_agency)
    requests: list[str] = []
    second_batch = threading.Event()

    def fault(directive_id: str, n: int) -> str:
        requests.append(directive_id)
        if len(requests) > 2:
            second_batch.set()
        return "ok"

    hooks.receiver.fault = fault
    waited: list[bool] = []
    real_record = delivery._record

    def record(*args: Any) -> None:
        if not waited:  # the first batch is recorded only once the second is on its way
            waited.append(second_batch.wait(10))
        real_record(*args)

    monkeypatch.setattr(delivery, "_record", record)
    outcome = deliver(installation, clock)
    assert waited == [True]
    assert (outcome.delivered, outcome.attempted) == (4, 4)
    assert_exactly_once(installation, hooks)


def test_after_a_failed_batch_nothing_is_sent_until_the_failure_is_recorded(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = _four_in_batches_of_two(installation, make_entry, webhook_agency,
                                    breaker_failures=100)
    failures_recorded: list[int] = []  # at each request, how many failures were on record
    third_request = threading.Event()

    def fault(directive_id: str, n: int) -> str:
        with reading(installation.db) as session:
            failures_recorded.append(session.execute(
                sa.select(sa.func.count()).select_from(Directive)
                .where(Directive.last_error.is_not(None))).scalar_one())  # type: ignore[union-attr]
        if len(failures_recorded) > 2:
            third_request.set()
        return "500" if len(failures_recorded) <= 2 else "ok"

    hooks.receiver.fault = fault
    real_record = delivery._record
    calls: list[int] = []

    def record(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:  # time for a second batch to leave early, if it were sent
            third_request.wait(1)
        real_record(*args)

    monkeypatch.setattr(delivery, "_record", record)
    outcome = deliver(installation, clock)
    assert failures_recorded[:2] == [0, 0]
    assert failures_recorded[2:] == [2, 2]  # the second batch left after both were recorded
    assert (outcome.failed, outcome.delivered) == (2, 2)
    clock.advance(10)
    assert deliver(installation, clock).delivered == 2
    assert_exactly_once(installation, hooks)


def test_a_lift_right_behind_its_imposition_waits_until_the_imposition_is_recorded(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock) -> None:
    """The next batch is claimed before the last is recorded: the lift is still blocked by
    its pending imposition then, and goes out in the claim after the recording."""
    hooks = webhook_agency(batch_size=1)
    publish(installation, make_entry(measures=[{"type": "travel.air"}]))
    publish(installation, make_entry(op="revoke", revision=2, subject=None, measures=None,
                                     expires_at=None, redress=None, listed_at=None,
                                     reason="judgment performed"))
    route(installation)
    impose, lift = directives(installation)
    assert (impose.action, lift.action) == ("impose", "lift")
    status_at_request: dict[str, str] = {}

    def fault(directive_id: str, n: int) -> str:
        with reading(installation.db) as session:
            status_at_request[directive_id] = session.execute(
                sa.select(Directive.status).where(Directive.directive_id == impose.directive_id)
            ).scalar_one()
        return "ok"

    hooks.receiver.fault = fault
    assert deliver(installation, clock).delivered == 2
    assert list(hooks.receiver.requests) == [impose.directive_id, lift.directive_id]
    assert status_at_request == {impose.directive_id: "pending",
                                 lift.directive_id: "delivered"}
    assert hooks.receiver.holdings() == []
    assert_exactly_once(installation, hooks)


def test_when_recording_fails_the_batch_already_sent_is_still_recorded(
        installation: Installation, make_entry: Make, webhook_agency: MakeAgency,
        clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = _four_in_batches_of_two(installation, make_entry, webhook_agency)
    real_record = delivery._record
    calls: list[int] = []

    def record(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the disk is full")
        real_record(*args)

    monkeypatch.setattr(delivery, "_record", record)
    with pytest.raises(RuntimeError, match="disk is full"):
        deliver(installation, clock)
    first, second = directives(installation)[:2], directives(installation)[2:]
    assert {r.status for r in first} == {"pending"}  # answered, not recorded: leased
    assert {r.status for r in second} == {"delivered"}  # sent meanwhile, and recorded
    clock.advance(3600)  # past the lease of the first batch
    assert deliver(installation, clock).delivered == 2
    # the failed recording left one attempt of each of the first two without an outcome
    assert_exactly_once(installation, hooks, crashed=True)
