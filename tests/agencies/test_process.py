"""A built-in agency in a process of its own (manifest setting ``"process": "own"``)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from interdict import issuers
from interdict.agencies import onboarding
from interdict.flows.dispatch import deliver_once, plan_once
from interdict.flows.ingest import ingest_once
from interdict.flows.runtime import installation as flow_installation
from interdict.home import Home
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import Directive, Receipt

Make = Callable[..., dict[str, Any]]


def publish_and_route(inst: Installation, document: dict[str, Any]) -> None:
    inst.public.publish(issuers.sign(inst, "court-7", [document]))
    home = str(inst.home.root)
    while ingest_once(home).read:
        pass
    while plan_once(home).causes:
        pass


def test_an_agency_in_its_own_process_applies_signs_and_survives_its_death(
        home: Home, make_entry: Make) -> None:
    Installation.init(home)
    inst = flow_installation(str(home.root))
    issuers.add(inst, "court-7", name="Court 7", measures=["travel.air"])
    onboarding.register_builtin(inst, "travel", {"process": "own"})
    measures = [{"type": "travel.air"}]
    publish_and_route(inst, make_entry(measures=measures))

    assert deliver_once(str(home.root), "travel").delivered == 1
    adapter: Any = inst.adapter("travel")
    child = adapter._process._child
    assert child.pid != os.getpid() and child.poll() is None
    # the child wrote the agency's own store, which this process reads
    assert not adapter.check_booking(identifier="passport:E12345678").allowed

    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    publish_and_route(inst, make_entry(entry_id="court-7/case-2", measures=measures))
    failed = deliver_once(str(home.root), "travel")
    assert (failed.delivered, failed.failed) == (0, 1)
    with transaction(inst.db) as session:
        error = session.execute(sa.select(Directive.last_error)
                                .where(Directive.status == "pending")).scalar_one()
    assert error is not None and error.startswith("delivery.adapter") and "gone" in error

    later = deliver_once(str(home.root), "travel", clock=lambda: utcnow() + timedelta(hours=1))
    assert later.delivered == 1
    assert adapter._process._child.pid != child.pid  # a new process took over
    with transaction(inst.db) as session:
        receipts = session.execute(sa.select(Receipt.status)).scalars().all()
    assert sorted(receipts) == ["applied", "applied"]
    adapter.close()
    assert "_process" not in adapter.__dict__
