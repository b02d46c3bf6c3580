"""Many workers: leases and SKIP LOCKED claims, and two dispatcher processes on PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interdict import issuers
from interdict.agencies import simulated
from interdict.directives import outbox
from interdict.flows.dispatch import plan_once
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import Directive, Receipt
from tests.directives.conftest import events

Make = Callable[..., dict[str, Any]]
ONLY_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
THREE = [{"type": "travel.air"}, {"type": "credit.loan"}, {"type": "permit.business"}]


def route(inst: Installation, make: Make, n: int, batch: int = 1000) -> None:
    """Publish ``n`` entries, each routed to travel, loans and permits, and plan them."""
    home = str(inst.home.root)
    for start in range(0, n, batch):
        documents = [make(entry_id=f"court-7/bulk-{i}", measures=THREE)
                     for i in range(start, min(start + batch, n))]
        inst.public.publish(issuers.sign(inst, "court-7", documents))
    while ingest_once(home, batch).read:
        pass
    while plan_once(home, batch).causes:
        pass


def claim(inst: Installation, worker: str, limit: int, due_at: Any = None,
          lease_s: float = 60) -> list[str]:
    due_at = due_at or utcnow()
    with transaction(inst.db) as session:
        claimed = outbox.claim(session, "travel", worker, limit, due_at,
                               due_at + timedelta(seconds=lease_s), max_attempts=8)
    return [directive_id for _, directive_id, _ in claimed.rows]


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_leased_directive_waits_for_its_lease_or_its_dead_worker(
        installation: Installation, make_entry: Make) -> None:
    route(installation, make_entry, 3)
    here = socket.gethostname()
    gone, elsewhere = f"{here}:{dead_pid()}", "other-host.example:4242"
    assert len(claim(installation, gone, 1)) == 1
    assert len(claim(installation, elsewhere, 1)) == 1
    # a third worker gets only what nobody holds
    (free,) = claim(installation, "third", 10, lease_s=600)
    # the dead local worker's lease is released; the other machine's is not
    with transaction(installation.db) as session:
        released = outbox.release_dead_workers(session, "travel", utcnow())
    assert [(e["refs"]["worker"], e["refs"]["count"]) for e in released] == [(gone, 1)]
    again = claim(installation, "third", 10, lease_s=600)
    assert len(again) == 1 and free not in again
    # once its lease has run out, the other machine's directive is claimed too
    assert claim(installation, "third", 10) == []
    later = claim(installation, "fourth", 10, due_at=utcnow() + timedelta(seconds=61))
    assert len(later) == 1
    attempted = [e for e in events(installation) if e["action"] == "delivery.attempted"]
    assert Counter(e["refs"]["worker"] for e in attempted) == {
        gone: 1, elsewhere: 1, "third": 2, "fourth": 1}


def test_a_claim_looks_past_pages_of_blocked_lifts(
        installation: Installation, make_entry: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lifts wait for their leased impositions; the claim walks page after page of them
    (pages of two rows here) to the directives that may go."""
    monkeypatch.setattr(outbox, "PAGE", 1)  # a page is then as long as the claim
    route(installation, make_entry, 5)
    held = claim(installation, "a", 5, lease_s=600)  # the five impositions, leased
    revokes = [make_entry(entry_id=f"court-7/bulk-{i}", op="revoke", revision=2, subject=None,
                          measures=None, expires_at=None, redress=None, listed_at=None,
                          reason="judgment performed") for i in range(5)]
    installation.public.publish(issuers.sign(installation, "court-7", revokes))
    home = str(installation.home.root)
    while ingest_once(home, 100).read:
        pass
    while plan_once(home, 100).causes:
        pass
    fresh = [make_entry(entry_id=f"court-7/fresh-{i}", measures=THREE) for i in range(2)]
    installation.public.publish(issuers.sign(installation, "court-7", fresh))
    while ingest_once(home, 100).read:
        pass
    while plan_once(home, 100).causes:
        pass
    with transaction(installation.db) as session:
        travel = dict(session.execute(sa.select(Directive.directive_id, Directive.action)
                                      .where(Directive.agency == "travel")).all())
    got = claim(installation, "b", 2)
    assert [travel[d] for d in got] == ["impose", "impose"] and not set(got) & set(held)
    assert claim(installation, "c", 2) == []  # only the blocked lifts are left


@ONLY_POSTGRES  # SKIP LOCKED is PostgreSQL's; SQLite serialises writers
def test_skip_locked_gives_concurrent_workers_different_rows(
        installation: Installation, make_entry: Make) -> None:
    route(installation, make_entry, 4)
    first: list[str] = []
    second: list[str] = []
    holding = threading.Event()
    commit = threading.Event()

    def worker_a() -> None:
        with transaction(installation.db) as session:
            now = utcnow()
            rows = outbox.claim(session, "travel", "a", 2, now, now + timedelta(minutes=1), 8)
            first.extend(d for _, d, _ in rows.rows)
            holding.set()
            commit.wait(60)  # rows stay locked, the lease not yet visible to others

    def worker_b() -> None:
        second.extend(claim(installation, "b", 2))

    a = threading.Thread(target=worker_a)
    a.start()
    assert holding.wait(60)
    b = threading.Thread(target=worker_b)
    b.start()
    try:
        # b has chosen its rows once it waits for the audit log head that a holds
        assert _wait_for(lambda: _waiting_on_a_lock(installation))
    finally:
        commit.set()
        a.join(60)
        b.join(60)
    assert len(first) == len(second) == 2 and not set(first) & set(second)


def _waiting_on_a_lock(inst: Installation) -> bool:
    with inst.db.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar())


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


DISPATCHER = r"""
import json, os, sys, time
from pathlib import Path
from interdict import flows

print("ready", flush=True)
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
with flows.flow_settings():
    report = flows.dispatch(os.environ["INTERDICT_HOME"])
print(json.dumps({a: d.attempted for a, d in report.delivered.items()}), flush=True)
"""


@pytest.mark.slow
@ONLY_POSTGRES  # several dispatchers at once is the PostgreSQL deployment
def test_two_dispatcher_processes_deliver_ten_thousand_directives_exactly_once(
        installation: Installation, make_entry: Make, prefect_api: str, tmp_path: Path) -> None:
    route(installation, make_entry, 3334)
    with transaction(installation.db) as session:
        total = session.execute(sa.select(sa.func.count()).select_from(Directive)).scalar_one()
    assert total == 10002
    go = tmp_path / "go"
    env = {**os.environ, "INTERDICT_HOME": str(installation.home.root),
           "INTERDICT_DATABASE_URL": installation.home.database_url,
           "PREFECT_API_URL": prefect_api}
    workers = [subprocess.Popen([sys.executable, "-c", DISPATCHER, str(go)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for worker in workers:  # both have imported everything: start them together
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    go.touch()
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=900)
        assert worker.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))

    with transaction(installation.db) as session:
        statuses = Counter(session.execute(sa.select(Directive.status)).scalars())
        receipts = Counter(session.execute(sa.select(Receipt.status)).scalars())
        ids = {a: set(session.execute(sa.select(Directive.directive_id)
                                      .where(Directive.agency == a)).scalars())
               for a in ("travel", "loans", "permits")}
    assert statuses == {"delivered": total}
    assert receipts == {"applied": total}  # not one "duplicate": nothing was sent twice
    attempted = [e for e in events(installation) if e["action"] == "delivery.attempted"]
    assert len(attempted) == total
    assert len({e["refs"]["directive_id"] for e in attempted}) == total
    assert sum(sum(r.values()) for r in reports) == total
    assert all(sum(r.values()) > 0 for r in reports), reports  # both really worked
    assert len({e["refs"]["worker"] for e in attempted}) == 2
    for agency, expected in ids.items():
        adapter = installation.adapter(agency)
        assert isinstance(adapter, simulated.SimulatedAgency)
        with adapter.db.connect() as conn:
            stored = list(conn.execute(sa.select(simulated.received.c.directive_id)).scalars())
        assert len(stored) == len(set(stored)) == len(expected) and set(stored) == expected
