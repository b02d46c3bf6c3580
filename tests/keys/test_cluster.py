"""Signature checks on a real Dask cluster (keys/cluster.py): hints like the local worker's,
signing kept on this machine, and an unreachable scheduler that changes no outcome."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from interdict.keys import cluster, jws, offload
from tests.keys.test_offload import ISSUER, KEYS, STRANGER, tokens

distributed = pytest.importorskip("distributed", reason="the Dask tests need distributed "
                                  "(pip install -e '.[test]')")


@pytest.fixture
def on_the_cluster(checks_on: Callable[[str], None], monkeypatch: pytest.MonkeyPatch) -> None:
    checks_on("dask")
    monkeypatch.setattr(offload, "_LEAST_TO_SEND", 1)  # these tests send a few tokens


@pytest.mark.usefixtures("on_the_cluster")
def test_checks_run_on_the_cluster_and_cover_only_what_verified() -> None:
    named = tokens()
    client = distributed.Client(os.environ[cluster.SCHEDULER_ENV], set_as_default=False)
    try:
        with distributed.get_task_stream(client) as stream:
            verified = offload.check_elsewhere(list(named.values()), jws.TYP_ENTRY,
                                               KEYS).result()
        ran = [task["key"] for task in stream.data]
        worker_pids = client.run(os.getpid)
    finally:
        client.close()
    assert {name for name, token in named.items()
            if verified.covers(token, ISSUER.public_key)} == {"good", "also good"}
    assert not verified.covers(named["good"], STRANGER.public_key)
    assert [key.split("-")[0] for key in ran] == ["verify_all"]
    assert os.getpid() not in worker_pids.values()
    assert offload._POOL is None  # no local worker was started for the checks


@pytest.mark.usefixtures("on_the_cluster")
def test_signing_stays_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's private key never goes to the cluster: directives are signed by the local
    worker process, and the cluster runs no signing task."""
    monkeypatch.setenv(offload.WORKERS_ENV, "1")
    payloads = [jws.canonical_json({"n": i}) for i in range(300)]
    client = distributed.Client(os.environ[cluster.SCHEDULER_ENV], set_as_default=False)
    try:
        with distributed.get_task_stream(client) as stream:
            signed = list(offload.sign_all(ISSUER, iter(payloads), jws.TYP_DIRECTIVE))
            offload.check_elsewhere(signed, jws.TYP_DIRECTIVE, KEYS).result()
        ran = {task["key"].split("-")[0] for task in stream.data}
    finally:
        client.close()
    assert signed == [ISSUER.sign(p, jws.TYP_DIRECTIVE) for p in payloads]
    assert ran == {"verify_all"}
    assert offload._POOL is not None  # the local worker signed


def a_closed_port() -> str:
    with socket.socket() as closed:  # bound, never listened on, then let go
        closed.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{closed.getsockname()[1]}"


@pytest.mark.parametrize("address", [a_closed_port(), "http://127.0.0.1:8787"],
                         ids=["nothing listens", "not a scheduler's address"])
def test_an_unreachable_scheduler_means_checks_here_and_one_warning(
        address: str, checks_on: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    checks_on("0")
    monkeypatch.setenv(cluster.SCHEDULER_ENV, address)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    monkeypatch.setattr(offload, "_LEAST_TO_SEND", 1)
    for _ in range(2):
        assert offload.check_elsewhere([tokens()["good"]], jws.TYP_ENTRY, KEYS).result() \
            is offload.NOTHING
    warnings = [r.getMessage() for r in caplog.records if r.name == cluster.__name__]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"INTERDICT_DASK_SCHEDULER={address}: its scheduler could "
                                  "not be reached")
    assert warnings[0].endswith("signatures are checked on this machine instead")


def test_a_cluster_that_never_answers_is_left_and_the_local_worker_goes_on(
        checks_on: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A scheduler with no workers takes the checks and never answers: after the answer
    timeout the batch is checked in place, the cluster is left, and the next checks and all
    signing go to the local worker, which the cluster's failure did not stop."""
    checks_on("1")
    monkeypatch.setattr(offload, "_LEAST_TO_SEND", 1)
    monkeypatch.setattr(offload, "_ANSWER_TIMEOUT_S", 1.0)
    named = tokens()
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as idle:
        monkeypatch.setenv(cluster.SCHEDULER_ENV, idle.scheduler_address)
        unanswered = offload.check_elsewhere(list(named.values()), jws.TYP_ENTRY, KEYS)
        assert unanswered.result() is offload.NOTHING
        warnings = [r.getMessage() for r in caplog.records if r.name == cluster.__name__]
        assert len(warnings) == 1 and "signature checks there failed" in warnings[0]
        locally = offload.check_elsewhere(list(named.values()), jws.TYP_ENTRY, KEYS).result()
        assert {n for n, t in named.items() if locally.covers(t, ISSUER.public_key)} == {
            "good", "also good"}
        payloads = [jws.canonical_json({"n": i}) for i in range(100)]
        assert list(offload.sign_all(ISSUER, iter(payloads), jws.TYP_DIRECTIVE)) == [
            ISSUER.sign(p, jws.TYP_DIRECTIVE) for p in payloads]
    assert not offload._BROKEN.is_set() and offload._POOL is not None


def test_leaving_the_cluster_never_fails_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    class Gone:
        def close(self, timeout: float) -> None:
            raise TimeoutError("the scheduler did not answer the goodbye")

    with caplog.at_level("DEBUG", logger=cluster.__name__):
        cluster._close_quietly(Gone())
    assert "did not answer the goodbye" in caplog.text
