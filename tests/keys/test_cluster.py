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


def test_an_unreachable_scheduler_means_checks_here_and_one_warning(
        checks_on: Callable[[str], None], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    checks_on("0")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setenv(cluster.SCHEDULER_ENV, address)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    monkeypatch.setattr(offload, "_LEAST_TO_SEND", 1)
    for _ in range(2):
        assert offload.check_elsewhere([tokens()["good"]], jws.TYP_ENTRY, KEYS).result() \
            is offload.NOTHING
    warnings = [r.getMessage() for r in caplog.records if r.name == cluster.__name__]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"INTERDICT_DASK_SCHEDULER={address}: its scheduler did not "
                                  "answer")
    assert warnings[0].endswith("signatures are checked on this machine instead")
