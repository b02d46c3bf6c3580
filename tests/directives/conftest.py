"""Fixtures for the delivery suites: a real webhook agency on 127.0.0.1 whose failures the test
controls, and the invariants every delivery must keep whatever the agency did."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import issuers
from interdict.agencies import onboarding
from interdict.agencies.receiver import Answer, Receiver, ReceiverServer
from interdict.directives import directive_id
from interdict.installation import Installation
from interdict.keys import jws, public_key_to_pem, truststore
from interdict.keys.jwk import b64u
from interdict.storage import transaction, utcnow
from interdict.storage.models import AuditEvent, Directive

AGENCY = "hooks"
# Small backoff and cooldown so a test reaches the next attempt by advancing its clock a
# little, never by sleeping.
FAST = {"backoff_base_s": 1, "backoff_cap_s": 4, "breaker_cooldown_s": 30, "timeout_s": 2}
Fault = Callable[[str, int], str]  # (directive_id, nth request for it) -> what to do


class FaultyReceiver(Receiver):
    """The reference receiver, told by the test to fail in one of the ways agencies do.

    Faults, per request:
    - ``ok``;
    - ``500``: nothing stored;
    - ``slow``: stored, then answered after the client gave up;
    - ``bad-receipt``: stored, answered with a receipt whose signature does not verify;
    - ``foreign-receipt``: stored, answered with a receipt signed by a key nobody trusts;
    - ``hold``: in flight until ``release``, then dropped unstored;
    - ``hold-after``: stored, then the answer waits for ``release``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fault: Fault = lambda directive_id, n: "ok"
        self.requests: dict[str, list[bytes]] = defaultdict(list)
        self.slow_s = 2.5
        self.arrived = threading.Event()
        self.release = threading.Event()
        self._stranger = jws.Signer(Ed25519PrivateKey.generate())
        self._count = threading.Lock()

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        if method != "POST":
            return super().answer(method, path, headers, body)
        directive_id = headers.get("webhook-id", "")
        with self._count:
            self.requests[directive_id].append(body)
            n = len(self.requests[directive_id])
        fault = self.fault(directive_id, n)
        if fault == "500":
            return Answer(500, b'{"code": "oops", "message": "internal error"}')
        if fault == "hold":  # the request dies in flight: never stored
            self.arrived.set()
            self.release.wait(120)
            return Answer(503, b'{"code": "gone", "message": "request abandoned"}')
        answer = super().answer(method, path, headers, body)
        if fault == "hold-after":  # stored, but the answer is late (or never read)
            self.arrived.set()
            self.release.wait(120)
        if fault == "slow":
            time.sleep(self.slow_s)
        if fault == "bad-receipt":  # its own key id, a signature that does not verify
            head, payload, _ = answer.body.split(b".")
            broken = b".".join((head, payload, b64u(bytes(64)).encode()))
            return Answer(200, broken, answer.content_type)
        if fault == "foreign-receipt":  # signed, but by a key the agency never registered
            document = jws.parse_payload(jws.parse(answer.body, jws.TYP_RECEIPT))
            forged = self._stranger.sign_document(document, jws.TYP_RECEIPT)
            return Answer(200, forged.encode(), answer.content_type)
        return answer

    def attempts(self) -> Counter[str]:
        return Counter({d: len(bodies) for d, bodies in self.requests.items()})


@dataclass
class WebhookAgency:
    """A registered webhook agency and the real HTTP server standing in for its system."""

    inst: Installation
    receiver: FaultyReceiver
    port: int
    server: ReceiverServer | None = None
    servers: list[ReceiverServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = ReceiverServer(self.receiver, "127.0.0.1", self.port)
        self.server.start()
        self.servers.append(self.server)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def webhook_agency(installation: Installation, tmp_path: Path
                   ) -> Iterator[Callable[..., WebhookAgency]]:
    made: list[WebhookAgency] = []

    def make(*, start: bool = True, measures: tuple[str, ...] = ("travel.air",),
             **settings: Any) -> WebhookAgency:
        with transaction(installation.db) as session:
            engine_keys = {k.kid: k.public_key
                           for k in truststore.keys_of(session, "engine", "interdict")}
        key = Ed25519PrivateKey.generate()
        receiver = FaultyReceiver(agency=AGENCY, database=tmp_path / "hooks.db",
                                  engine_keys=engine_keys, signer=jws.Signer(key))
        port = free_port()
        agency = WebhookAgency(installation, receiver, port)
        manifest = {
            "schema": "interdict/agency-manifest/v1", "id": AGENCY, "name": "Hooks agency",
            "contact": "ops@hooks.example", "adapter": "webhook",
            "settings": {"endpoint": f"{agency.url}/directives",
                         "holdings_endpoint": f"{agency.url}/holdings", "max_attempts": 8,
                         **FAST, **settings},
            "measures": list(measures), "subject_fields": ["type", "names", "identifiers"],
            "identifier_schemes": ["passport"],
            "public_keys": [public_key_to_pem(jws.Signer(key).public_key)]}
        onboarding.register(installation, manifest)
        if start:
            agency.start()
        made.append(agency)
        return agency

    yield make
    for agency in made:
        agency.stop()
        installation.adapter(AGENCY).close()
        agency.receiver.close()


# -- driving delivery without Prefect, with a clock the test moves ---------------------------

class Clock:
    """Delivery's "now": it stands still until the test moves it, so what is due, and when a
    circuit reopens, never depends on how fast the machine is."""

    def __init__(self) -> None:
        self.start = utcnow()
        self.offset = timedelta()

    def __call__(self) -> Any:
        return self.start + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def publish(inst: Installation, *documents: dict[str, Any]) -> None:
    inst.public.publish(issuers.sign(inst, "court-7", documents))


def directives(inst: Installation, agency: str | None = AGENCY) -> list[Directive]:
    with transaction(inst.db) as session:
        query = sa.select(Directive).order_by(Directive.id)  # type: ignore[arg-type]
        if agency is not None:
            query = query.where(Directive.agency == agency)
        return list(session.execute(query).scalars())


def events(inst: Installation) -> list[dict[str, Any]]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()
        return [json.loads(r) for r in rows]


def per_directive(inst: Installation, action: str) -> Counter[str]:
    return Counter(e["refs"]["directive_id"] for e in events(inst) if e["action"] == action)


def since_requeued(inst: Installation) -> dict[str, Counter[str]]:
    """Per action, per directive, the events since it was last requeued (a requeue starts a
    fresh attempt count)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for event in events(inst):
        directive_id = event["refs"].get("directive_id")
        if event["action"] == "directive.requeued":
            for counter in counts.values():
                counter.pop(directive_id, None)
        elif directive_id:
            counts[event["action"]][directive_id] += 1
    return counts


def all_attempts(inst: Installation) -> Counter[str]:
    return per_directive(inst, "delivery.attempted")


def assert_exactly_once(inst: Installation, agency: WebhookAgency, *, crashed: bool = False,
                        all_reached: bool = True) -> None:
    """Each directive ends delivered once in effect (one row per directive_id in the agency's
    store) or dead-lettered with a reason; none is lost; every attempt is in the audit log.

    ``crashed``: a worker was killed, so an attempt may have started (and been logged)
    without reaching the agency, or reached it without its outcome being recorded.
    ``all_reached``: every attempt reached the agency's server (it was never down)."""
    rows = directives(inst)
    assert rows, "the test issued no directive to the agency"
    stored = [r["directive_id"] for r in agency.receiver.received()]
    assert len(stored) == len(set(stored))
    since = since_requeued(inst)
    attempted, failed, recorded = (since["delivery.attempted"], since["delivery.failed"],
                                   since["receipt.recorded"])
    sent = Counter({d: len(b) for d, b in agency.receiver.requests.items()})
    for row in rows:
        assert row.directive_id == directive_id(row.issuer, row.entry_id, row.revision,
                                                row.agency, row.action)
        assert row.status in ("delivered", "dead"), (row.directive_id, row.status)
        if row.status == "dead":
            assert row.last_error, row.directive_id
        else:
            assert row.directive_id in stored
            assert recorded[row.directive_id] >= 1
        assert attempted[row.directive_id] == row.attempts
        requests = agency.receiver.requests[row.directive_id]
        # A worker killed while sending leaves the server a request whose body never arrived
        # (empty); only bodies that arrived are documents that could differ.
        assert len({body for body in requests if body}) <= 1, "a retry sent a different document"
        assert sent[row.directive_id] <= all_attempts(inst)[row.directive_id]
        outcomes = failed[row.directive_id] + recorded[row.directive_id]
        if crashed:
            assert outcomes <= row.attempts
        else:
            assert outcomes == row.attempts
            if all_reached:
                assert sent[row.directive_id] == all_attempts(inst)[row.directive_id]
    assert set(stored) <= {r.directive_id for r in rows}
