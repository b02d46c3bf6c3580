"""Signature checks in a worker process: a hint that never changes an outcome."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.directives import receipts
from interdict.errors import VerificationError
from interdict.keys import jws, offload
from interdict.keys.jwk import b64u, unb64u

ISSUER = jws.Signer(Ed25519PrivateKey.generate())
STRANGER = jws.Signer(Ed25519PrivateKey.generate())
KEYS = {ISSUER.kid: ISSUER.public_key}
DIRECTIVE = "d-" + "0" * 32


def tokens() -> dict[str, str]:
    """One good token and one of each kind that must not verify."""
    good = ISSUER.sign_document({"n": 1}, jws.TYP_ENTRY)
    head, _, signature = good.split(".")
    return {
        "good": good,
        "also good": ISSUER.sign_document({"n": 2}, jws.TYP_ENTRY),
        "tampered": ".".join((head, b64u(b'{"n":3}'), signature)),
        "unknown kid": STRANGER.sign_document({"n": 4}, jws.TYP_ENTRY),
        "other kind": ISSUER.sign_document({"n": 5}, jws.TYP_RECEIPT),
        "malformed": "not.a-jws",
        "short signature": f"{head}.{b64u(b'{}')}.{b64u(b'x' * 10)}",
    }


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A worker process of this test's own, torn down after it."""
    monkeypatch.setenv(offload.WORKERS_ENV, "1")
    monkeypatch.setattr(offload, "_POOL", None)
    monkeypatch.setattr(offload, "_BROKEN", type(offload._BROKEN)())
    monkeypatch.setattr(offload, "_LEAST_TO_SEND", 1)  # these tests send a few tokens
    yield
    offload.shutdown()


def test_only_tokens_that_verify_under_the_key_their_kid_names_pass() -> None:
    named = tokens()
    passed = offload.verify_all(list(named.values()), jws.TYP_ENTRY, KEYS)
    names = list(named)
    assert [(names[i], kid) for i, kid in passed] == [("good", ISSUER.kid),
                                                      ("also good", ISSUER.kid)]


@pytest.mark.usefixtures("workers")
def test_checks_run_in_another_process_and_cover_only_what_verified() -> None:
    named = tokens()
    verified = offload.check_elsewhere(list(named.values()), jws.TYP_ENTRY, KEYS).result()
    assert {name for name, token in named.items()
            if verified.covers(token, ISSUER.public_key)} == {"good", "also good"}
    assert not verified.covers(named["good"], STRANGER.public_key)  # another key: not covered
    pool = offload._pool()
    assert pool is not None and pool.submit(os.getpid).result() != os.getpid()


def test_without_workers_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(offload.WORKERS_ENV, "0")
    monkeypatch.setattr(offload, "_POOL", None)
    monkeypatch.setattr(offload, "_LEAST_TO_SEND", 1)
    assert offload.check_elsewhere([tokens()["good"]], jws.TYP_ENTRY, KEYS).result() \
        is offload.NOTHING
    assert offload._POOL is None


def test_a_setting_that_is_not_a_number_means_no_worker_and_one_warning(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(offload.WORKERS_ENV, "two")
    assert (offload.workers(), offload.workers()) == (0, 0)
    assert [r.getMessage() for r in caplog.records] == [
        "INTERDICT_SIGNATURE_WORKERS='two' is not a number of processes; signatures are made "
        "and checked in the engine's process"]
    monkeypatch.setenv(offload.WORKERS_ENV, " 2 ")
    assert offload.workers() == 2


@pytest.mark.usefixtures("workers")
def test_a_failed_worker_means_checking_in_place_from_then_on(
        caplog: pytest.LogCaptureFixture) -> None:
    failed: Future[list[tuple[int, str]]] = Future()
    failed.set_exception(OSError("worker died"))
    assert offload.Pending(failed, ["x"], KEYS).result() is offload.NOTHING
    assert "worker died" in caplog.text
    assert offload.check_elsewhere([tokens()["good"]], jws.TYP_ENTRY, KEYS).result() \
        is offload.NOTHING
    assert offload._POOL is None


def receipt(signer: jws.Signer, **changes: str) -> str:
    return signer.sign_document({"schema": "interdict/receipt/v1", "directive_id": DIRECTIVE,
                                 "agency": "travel", "status": "applied",
                                 "at": "2026-11-27T00:00:00Z", **changes}, jws.TYP_RECEIPT)


def test_a_receipt_verifies_the_same_with_and_without_the_hint() -> None:
    agency = jws.Signer(Ed25519PrivateKey.generate())
    keys = {agency.kid: agency.public_key}
    good = receipt(agency)
    head, _, signature = good.split(".")
    forged = ".".join((head, b64u(unb64u(good.split(".")[1]).replace(b"applied", b"rejected")),
                       signature))
    for verified in (offload.NOTHING, offload.Verified(
            {t: keys[agency.kid] for t in (good,)})):
        assert receipts.verify(good, agency="travel", directive_id=DIRECTIVE, agency_keys=keys,
                               verified=verified)["status"] == "applied"
    # a hint for another token, or for the forged one under another key, decides nothing
    for verified in (offload.Verified({good: agency.public_key}),
                     offload.Verified({forged: STRANGER.public_key})):
        with pytest.raises(VerificationError) as refused:
            receipts.verify(forged, agency="travel", directive_id=DIRECTIVE, agency_keys=keys,
                            verified=verified)
        assert refused.value.code == "signature.invalid"


def test_a_few_tokens_are_checked_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(offload.WORKERS_ENV, "1")
    monkeypatch.setattr(offload, "_POOL", None)
    assert offload.check_elsewhere([tokens()["good"]] * (offload._LEAST_TO_SEND - 1),
                                   jws.TYP_ENTRY, KEYS).result() is offload.NOTHING
    assert offload._POOL is None  # no worker started for them


@pytest.mark.usefixtures("workers")
def test_documents_signed_by_a_worker_are_the_bytes_signed_in_place() -> None:
    payloads = [jws.canonical_json({"n": i, "pad": "x" * 500}) for i in range(600)]
    in_place = [ISSUER.sign(p, jws.TYP_DIRECTIVE) for p in payloads]
    assert list(offload.sign_all(ISSUER, iter(payloads), jws.TYP_DIRECTIVE)) == in_place
    pool = offload._pool()
    assert pool is not None and not offload._BROKEN.is_set()  # the worker did sign
    parsed = jws.parse(in_place[-1], jws.TYP_DIRECTIVE)
    jws.verify_signature(parsed, ISSUER.public_key)


@pytest.mark.usefixtures("workers")
def test_a_chunk_a_worker_failed_to_sign_is_signed_in_place() -> None:
    payloads = [[jws.canonical_json({"n": i})] for i in range(3)]
    failed: Future[list[str]] = Future()
    failed.set_exception(OSError("worker died"))
    done: Future[list[str]] = Future()  # after a failure, not read: its token is wrong
    done.set_result([ISSUER.sign(payloads[1][0], jws.TYP_DIRECTIVE)])
    in_place = [ISSUER.sign(p[0], jws.TYP_DIRECTIVE) for p in payloads]
    tokens = list(offload._signed(ISSUER, jws.TYP_DIRECTIVE, payloads, [None, failed, done]))
    assert tokens == in_place
    assert offload._BROKEN.is_set()


def _sign_with_a_worker() -> None:
    """Runs in a process started by multiprocessing: signs enough to start a worker."""
    os.environ[offload.WORKERS_ENV] = "1"
    payloads = [jws.canonical_json({"n": i}) for i in range(300)]
    assert len(list(offload.sign_all(ISSUER, iter(payloads), jws.TYP_DIRECTIVE))) == 300
    assert offload._POOL is not None


def test_a_multiprocessing_process_that_used_a_worker_exits() -> None:
    """multiprocessing joins a process's children before its atexit hooks run; the workers
    are stopped before that, or the process would never exit."""
    child = multiprocessing.get_context("spawn").Process(target=_sign_with_a_worker)
    child.start()
    child.join(timeout=60)
    hung = child.is_alive()
    if hung:
        child.kill()
    assert not hung and child.exitcode == 0
