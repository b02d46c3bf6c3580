"""`interdict serve`: sync and reconcile on a schedule, never two syncs at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitStrategy

from interdict import issuers
from interdict.agencies import onboarding
from interdict.agencies.receiver import Answer, Receiver, ReceiverServer
from interdict.flows.deploy import deployments
from interdict.installation import Installation
from interdict.keys import jws, public_key_to_pem, truststore
from interdict.storage import transaction

Make = Callable[..., dict[str, Any]]


def test_the_deployments_schedule_sync_reconcile_review_and_erase_one_at_a_time(
        tmp_path: Path) -> None:
    made = {d.flow_name: d for d in deployments(str(tmp_path), name="east", sync_every=120,
                                                reconcile_every=7200, erase_every=43200)}
    assert set(made) == {"sync", "reconcile", "review", "erase"}
    for flow_name, every in (("sync", 120), ("reconcile", 7200), ("review", 86400),
                             ("erase", 43200)):
        deployment = made[flow_name]
        assert deployment.name == "east"
        assert deployment.parameters == {"home": str(tmp_path)}
        (schedule,) = deployment.schedules
        assert schedule.schedule.interval == timedelta(seconds=every)
        limit = deployment.concurrency_limit
        assert limit == 1
        assert deployment.concurrency_options is not None
        assert deployment.concurrency_options.collision_strategy == \
            ConcurrencyLimitStrategy.CANCEL_NEW
        assert deployment.entrypoint == f"interdict.flows.{flow_name}.{flow_name}"


class Holding(Receiver):
    """Holds its first directive open until released: a sync that takes as long as we like."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrived, self.release = threading.Event(), threading.Event()

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        if method == "POST" and not self.arrived.is_set():
            self.arrived.set()
            self.release.wait(120)
        return super().answer(method, path, headers, body)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_runs_sync_and_cancels_a_second_one_while_the_first_runs(
        installation: Installation, make_entry: Make, prefect_api: str, tmp_path: Path) -> None:
    with transaction(installation.db) as session:
        engine_keys = {k.kid: k.public_key
                       for k in truststore.keys_of(session, "engine", "interdict")}
    receiver = Holding(agency="hooks", database=tmp_path / "hooks.db", engine_keys=engine_keys,
                       signer=jws.Signer(Ed25519PrivateKey.generate()))
    server = ReceiverServer(receiver, "127.0.0.1", 0)
    server.start()
    onboarding.register(installation, {
        "schema": "interdict/agency-manifest/v1", "id": "hooks", "name": "Hooks",
        "contact": "ops@hooks.example", "adapter": "webhook",
        "settings": {"endpoint": f"{server.url}/in", "timeout_s": 120},
        "measures": ["travel.air"], "subject_fields": ["type"],
        "public_keys": [public_key_to_pem(receiver.signer.public_key)]})
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(measures=[{"type": "travel.air"}])]))
    name = f"test-{socket.gethostname()}-{os.getpid()}"
    env = {**os.environ, "INTERDICT_HOME": str(installation.home.root),
           "PREFECT_API_URL": prefect_api}
    script = str(Path(sys.executable).with_name("interdict"))
    serving = subprocess.Popen([script, "serve", "--name", name, "--sync-every", "3600",
                                "--reconcile-every", "7200"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with get_client(sync_client=True) as client:
            deployment = _wait_for(lambda: _deployment(client, f"sync/{name}"))
            first = client.create_flow_run_from_deployment(deployment.id)
            assert receiver.arrived.wait(180), "the first sync never reached the agency"
            second = client.create_flow_run_from_deployment(deployment.id)
            cancelled = _wait_for(lambda: _final(client, second.id))
            receiver.release.set()
            completed = _wait_for(lambda: _final(client, first.id))
        assert cancelled.type.value == "CANCELLED", cancelled
        assert completed.type.value == "COMPLETED", completed
    finally:
        receiver.release.set()
        serving.terminate()
        serving.wait(60)
        server.shutdown()
        server.server_close()
    assert [r["directive_id"] for r in receiver.received()] != []


def _deployment(client: Any, name: str) -> Any:
    try:
        return client.read_deployment_by_name(name)
    except Exception:
        return None


def _final(client: Any, flow_run_id: Any) -> Any:
    state = client.read_flow_run(flow_run_id).state
    return state if state is not None and state.is_final() else None


def _wait_for(found: Callable[[], Any], timeout_s: float = 240) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("timed out waiting")
