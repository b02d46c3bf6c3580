"""The webhook adapter against the reference receiver, both real, over HTTP on 127.0.0.1.

What travels is checked with code interdict did not write: the Standard Webhooks signature
with ``cryptography``, the directive and the receipt with joserfc.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from interdict import issuers
from interdict.agencies import conformance, onboarding
from interdict.agencies.base import AdapterContext
from interdict.agencies.receiver import (
    RECEIPT_PUBLIC_KEY,
    Answer,
    Receiver,
    ReceiverServer,
    load_engine_keys,
)
from interdict.agencies.webhook import WebhookAgency, headers_for
from interdict.cli import main
from interdict.errors import ConfigError, DeliveryError
from interdict.flows.dispatch import deliver_once, plan_once
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.keys import jws, public_key_to_pem, truststore
from interdict.keys.jwk import public_jwk, unb64u
from interdict.storage import transaction
from interdict.storage.models import Directive, Receipt

Make = Callable[..., dict[str, Any]]


class Recording(Receiver):
    """The reference receiver, keeping each request exactly as it arrived."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: list[tuple[dict[str, str], bytes]] = []

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        self.seen.append((dict(headers), body))
        return super().answer(method, path, headers, body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Receiver], str]]:
    servers: list[ReceiverServer] = []

    def serve(receiver: Receiver) -> str:
        server = ReceiverServer(receiver, "127.0.0.1", 0)
        server.start()
        servers.append(server)
        return server.url

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def engine_keys(inst: Installation) -> dict[str, bytes]:
    with transaction(inst.db) as session:
        return {k.kid: k.public_key for k in truststore.keys_of(session, "engine", "interdict")}


def onboard_webhook(inst: Installation, url: str, agency: str, receipt_key_pem: str,
                    **settings: Any) -> None:
    onboarding.register(inst, {
        "schema": "interdict/agency-manifest/v1", "id": agency, "name": "Border agency",
        "contact": "ops@border.example", "adapter": "webhook",
        "settings": {"endpoint": f"{url}/directives", "holdings_endpoint": f"{url}/holdings",
                     "timeout_s": 5, **settings},
        "measures": ["travel.air"], "subject_fields": ["type", "names", "identifiers"],
        "identifier_schemes": ["passport"],
        "public_keys": [receipt_key_pem]})


def deliver(inst: Installation, agency: str) -> None:
    home = str(inst.home.root)
    while ingest_once(home).read:
        pass
    while plan_once(home).causes:
        pass
    deliver_once(home, agency)


def test_a_directive_travels_as_a_standard_webhook_and_verifies_with_other_libraries(
        installation: Installation, make_entry: Make, tmp_path: Path,
        served: Callable[[Receiver], str]) -> None:
    receiver = Recording(agency="border", database=tmp_path / "border.db",
                         engine_keys=engine_keys(installation),
                         signer=jws.Signer(Ed25519PrivateKey.generate()))
    onboard_webhook(installation, served(receiver), "border",
                    public_key_to_pem(receiver.signer.public_key))
    entry = make_entry(measures=[{"type": "travel.air"}])
    installation.public.publish(issuers.sign(installation, "court-7", [entry]))
    before = int(time.time())
    deliver(installation, "border")

    with transaction(installation.db) as session:
        (directive,) = session.execute(sa.select(Directive).where(
            Directive.agency == "border")).scalars()
        receipt = session.get_one(Receipt, directive.directive_id)
    assert directive.status == "delivered" and receipt.status == "applied"
    ((headers, body),) = receiver.seen
    # the request: exactly these headers, the directive JWS as the body
    assert set(headers) == {"host", "accept", "accept-encoding", "connection", "user-agent",
                            "content-type", "content-length", "webhook-id",
                            "webhook-timestamp", "webhook-signature"}
    assert headers["content-type"] == "application/jose"
    assert body == directive.jws.encode()
    assert headers["webhook-id"] == directive.directive_id
    assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
    version, signature = headers["webhook-signature"].split(",", 1)
    engine = Ed25519PublicKey.from_public_bytes(installation.engine_signer.public_key)
    engine.verify(base64.b64decode(signature), f"{headers['webhook-id']}."
                  f"{headers['webhook-timestamp']}.".encode() + body)  # raises if bad
    assert version == "v1a"
    # the directive and the receipt, with joserfc
    engine_jwk = OKPKey.import_key(public_jwk(installation.engine_signer.public_key))
    decoded = json.loads(jose_jws.deserialize_compact(body.decode(), engine_jwk,
                                                      algorithms=["Ed25519"]).payload)
    assert decoded["directive_id"] == directive.directive_id and decoded["agency"] == "border"
    agency_jwk = OKPKey.import_key(public_jwk(receiver.signer.public_key))
    answered = json.loads(jose_jws.deserialize_compact(receipt.jws, agency_jwk,
                                                       algorithms=["Ed25519"]).payload)
    assert answered == {**answered, "directive_id": directive.directive_id, "status": "applied"}
    # data minimisation, as the agency sees it: only the fields its manifest allows
    assert set(decoded["subject"]) == {"type", "names", "identifiers"}
    assert [i["scheme"] for i in decoded["subject"]["identifiers"]] == ["passport"]
    wire = body.decode() + json.dumps(headers) + json.dumps(decoded, ensure_ascii=False)
    for withheld in ("1980-04-01", "Beijing", "110101198004010011", "national-id"):
        assert withheld not in wire
    assert set(decoded) == {"schema", "directive_id", "agency", "action", "entry_ref",
                            "legal_basis", "reason", "effective_from", "issued_at", "subject",
                            "measures", "expires_at", "redress", "policy"}
    assert decoded["schema"] == "interdict/directive/v2"
    assert decoded["policy"].startswith("sha256:")
    assert receiver.holdings() == [directive.directive_id]


def _signed(signer: jws.Signer, webhook_id: str, body: bytes, **changes: Any) -> dict[str, str]:
    headers = {"content-type": "application/jose",
               **headers_for(signer.raw_sign, webhook_id, body, changes.pop("timestamp", None))}
    headers.update(changes)
    return headers


def test_the_receiver_refuses_stale_unsigned_and_tampered_requests(
        tmp_path: Path, served: Callable[[Receiver], str]) -> None:
    engine = jws.Signer(Ed25519PrivateKey.generate())
    stranger = jws.Signer(Ed25519PrivateKey.generate())
    receiver = Receiver(agency="border", database=tmp_path / "r.db",
                        engine_keys={engine.kid: engine.public_key},
                        signer=jws.Signer(Ed25519PrivateKey.generate()))
    url = served(receiver) + "/directives"
    box_directive = _directive(engine, "border")
    directive_id = json.loads(unb64u(box_directive.split(".")[1]))["directive_id"]
    body = box_directive.encode()

    def post(headers: dict[str, str], content: bytes = body) -> httpx.Response:
        return httpx.post(url, headers=headers, content=content, timeout=5)

    stale = post(_signed(engine, directive_id, body, timestamp=int(time.time()) - 330))
    assert stale.status_code == 400 and stale.json()["code"] == "webhook.stale_timestamp"
    future = post(_signed(engine, directive_id, body, timestamp=int(time.time()) + 330))
    assert future.status_code == 400
    unsigned = post({"content-type": "application/jose", "webhook-id": directive_id,
                     "webhook-timestamp": str(int(time.time()))})
    assert unsigned.status_code == 400 and unsigned.json()["code"] == "webhook.headers"
    forged = post(_signed(stranger, directive_id, body))
    assert forged.status_code == 401 and forged.json()["code"] == "webhook.signature"
    swapped = post(_signed(engine, directive_id, body), content=body + b" ")
    assert swapped.status_code == 401  # the signature covers the exact body
    wrong_type = post(_signed(engine, directive_id, body, **{"content-type": "text/plain"}))
    assert wrong_type.status_code == 415
    assert receiver.received() == []

    # a directive that does not verify, sent by interdict: a signed "rejected" receipt
    head, payload, signature = box_directive.split(".")
    tampered = ".".join((head, payload[:-4] + "AAAA", signature)).encode()
    answer = post(_signed(engine, directive_id, tampered), content=tampered)
    assert answer.status_code == 200
    rejected = _receipt(answer.text, receiver)
    assert rejected["status"] == "rejected" and rejected["detail"].startswith("signature.invalid")
    assert receiver.received() == []

    first = post(_signed(engine, directive_id, body))
    again = post(_signed(engine, directive_id, body))
    assert [_receipt(r.text, receiver)["status"] for r in (first, again)] == ["applied",
                                                                              "duplicate"]
    assert [r["directive_id"] for r in receiver.received()] == [directive_id]


def _directive(engine: jws.Signer, agency: str) -> str:
    manifest = {"schema": "interdict/agency-manifest/v1", "id": agency, "name": "x",
                "contact": "x", "adapter": "webhook", "measures": ["travel.air"],
                "subject_fields": ["type", "names"]}
    with tempfile.TemporaryDirectory() as folder:
        box = conformance.Sandbox(manifest, Path(folder), WebhookAgency)
        box.engine = engine
        return box.directive("impose", "case-1")


def _receipt(token: str, receiver: Receiver) -> dict[str, Any]:
    key = OKPKey.import_key(public_jwk(receiver.signer.public_key))
    document: dict[str, Any] = json.loads(
        jose_jws.deserialize_compact(token, key, algorithms=["Ed25519"]).payload)
    return document


def test_the_webhook_adapter_and_the_reference_receiver_pass_the_conformance_kit(
        tmp_path: Path, served: Callable[[Receiver], str]) -> None:
    receiver = Receiver(agency="border", database=tmp_path / "r.db", engine_keys={},
                        signer=jws.Signer(Ed25519PrivateKey.generate()))
    url = served(receiver)
    manifest = {"schema": "interdict/agency-manifest/v1", "id": "border", "name": "Border",
                "contact": "ops@border.example", "adapter": "webhook",
                "settings": {"endpoint": f"{url}/directives",
                             "holdings_endpoint": f"{url}/holdings", "timeout_s": 5},
                "measures": ["travel.air"], "subject_fields": ["type", "names"],
                "public_keys": [public_key_to_pem(receiver.signer.public_key)]}
    box = conformance.Sandbox(manifest, tmp_path / "box", WebhookAgency)
    receiver.engine_keys[box.engine.kid] = box.engine.public_key  # the agency trusts the kit
    box.find_receipt_keys()
    held: dict[str, str] = {}
    passed = []
    try:
        for name, check in conformance.CHECKS:
            if name == "failure-reported":
                continue  # about an adapter's own storage; the webhook adapter has none
            check(box, held)  # raises conformance.Failed with the reason
            passed.append(name)
    finally:
        box.close()
    assert "holdings" in passed and "lift-unknown" in passed


def test_redirects_are_refused_and_never_followed(tmp_path: Path) -> None:
    followed: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            followed.append(self.path)
            self.send_response(307)
            self.send_header("location", "/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        adapter = _adapter(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/in")
        (answer,) = adapter.deliver([_directive(jws.Signer(Ed25519PrivateKey.generate()),
                                                "border")])
        adapter.close()
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(answer, DeliveryError) and answer.code == "webhook.redirect"
    assert followed == ["/in"]


def test_a_timeout_and_a_refused_connection_fail_only_their_directive(tmp_path: Path) -> None:
    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(1.0)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    engine = jws.Signer(Ed25519PrivateKey.generate())
    try:
        slow = _adapter(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/", timeout_s=0.2)
        (timed_out,) = slow.deliver([_directive(engine, "border")])
        slow.close()
    finally:
        server.shutdown()
        server.server_close()
    down = _adapter(tmp_path, f"http://127.0.0.1:{free_port()}/")
    (refused,) = down.deliver([_directive(engine, "border")])
    assert isinstance(timed_out, DeliveryError) and timed_out.code == "webhook.timeout"
    assert isinstance(refused, DeliveryError) and refused.code == "webhook.unreachable"


def _adapter(tmp_path: Path, endpoint: str, **settings: Any) -> WebhookAgency:
    manifest = {"id": "border", "adapter": "webhook", "measures": ["travel.air"],
                "subject_fields": ["type"], "settings": {"endpoint": endpoint, **settings}}
    return WebhookAgency(AdapterContext(manifest=manifest, data_dir=tmp_path,
                                        engine_sign=jws.Signer(
                                            Ed25519PrivateKey.generate()).raw_sign))


@pytest.mark.parametrize("endpoint", ["http://agency.example/in", "ftp://127.0.0.1/in",
                                      "/relative"])
def test_an_endpoint_must_be_https_unless_on_this_machine(tmp_path: Path, endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"settings\.endpoint") as raised:
        _adapter(tmp_path, endpoint)
    assert raised.value.code == "webhook.endpoint"
    assert _adapter(tmp_path, "https://agency.example/in").endpoint.startswith("https://")


def test_engine_keys_load_from_pem_or_jwks(tmp_path: Path) -> None:
    keys = [jws.Signer(Ed25519PrivateKey.generate()) for _ in range(2)]
    pem = tmp_path / "engine.pem"
    pem.write_text("".join(public_key_to_pem(k.public_key) for k in keys))
    jwks = tmp_path / "engine.jwks"
    jwks.write_text(json.dumps({"keys": [public_jwk(k.public_key) for k in keys]}))
    expected = {k.kid: k.public_key for k in keys}
    assert load_engine_keys(pem) == load_engine_keys(jwks) == expected
    (tmp_path / "empty.json").write_text('{"keys": []}')
    with pytest.raises(ConfigError, match="no Ed25519 public key"):
        load_engine_keys(tmp_path / "empty.json")


@pytest.mark.slow
def test_the_receiver_command_serves_an_agency_end_to_end(
        installation: Installation, make_entry: Make, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`interdict agency engine-keys` for the agency, `interdict agency receiver` as a real
    process, then delivery, reconcile's holdings question, and a restart that keeps state."""
    home = ["--home", str(installation.home.root)]
    assert main([*home, "agency", "engine-keys"]) == 0
    (tmp_path / "engine.jwks").write_text(capsys.readouterr().out)
    port, data = free_port(), tmp_path / "agency"
    env = {**os.environ, "INTERDICT_KEY_KDF_ROUNDS": "1"}
    script = str(Path(sys.executable).with_name("interdict"))
    command = [script, "agency", "receiver", "--agency", "border", "--port", str(port),
               "--data-dir", str(data), "--engine-key", str(tmp_path / "engine.jwks")]

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
        assert process.stderr is not None
        assert b"receiving directives for border" in process.stderr.readline()
        return process

    process = start()
    try:
        onboard_webhook(installation, f"http://127.0.0.1:{port}", "border",
                        (data / RECEIPT_PUBLIC_KEY).read_text())
        installation.public.publish(issuers.sign(installation, "court-7", [
            make_entry(measures=[{"type": "travel.air"}])]))
        deliver(installation, "border")
        (directive,) = _rows(installation, "border")
        assert directive.status == "delivered"
        process.terminate()
        process.wait(30)
        process = start()  # a restart keeps what it received
        assert installation.adapter("border").holdings() == [directive.directive_id]
    finally:
        process.terminate()
        process.wait(30)


def _rows(inst: Installation, agency: str) -> list[Directive]:
    with transaction(inst.db) as session:
        return list(session.execute(sa.select(Directive)
                                    .where(Directive.agency == agency)).scalars())
