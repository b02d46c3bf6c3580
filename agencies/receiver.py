"""A reference receiver for the webhook adapter: what an agency runs, or copies, to take
interdict's directives over HTTP (``interdict agency receiver --help``).

For each ``POST`` it, in order:

1. checks the Standard Webhooks headers, and refuses a ``webhook-timestamp`` more than five
   minutes from its own clock (HTTP 400: a replayed or delayed request);
2. verifies ``webhook-signature`` (``v1a``, Ed25519 over ``id.timestamp.body``) under one of
   interdict's engine keys (HTTP 401 otherwise: the request did not come from interdict);
3. verifies the directive JWS under the same keys, its schema, that it is addressed to this
   agency and that its ``directive_id`` is the ``webhook-id`` (otherwise it answers with a
   signed ``rejected`` receipt saying why);
4. asks the agency's ``flag`` hook, if it was given one, whether it will act on an impose or
   amend (a :class:`~interdict.agencies.inbound.Flag` answers ``flagged`` with its code);
5. stores it once per ``directive_id`` in SQLite (a repeat is answered ``duplicate``); a lift
   also deletes the directives stored earlier for its entry (their JWS, which carry the
   subject), and its receipt says ``erased: true``;
6. answers 200 with a receipt JWS (v2) signed by the agency's own key (``application/jose``).

``GET /holdings``, signed the same way with an empty body, answers
``{"directive_ids": [...]}``: per entry, the latest directive received, when it imposes or
amends (what reconcile compares with what interdict says the agency should hold).
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nacl.exceptions

from interdict.agencies.inbound import Flag, receipt_document, verify_directive
from interdict.agencies.webhook import CONTENT_TYPE, SIGNATURE_VERSION, signed_content
from interdict.errors import ConfigError, DocumentError, VerificationError
from interdict.keys import jws, keyfile
from interdict.keys.jwk import public_key_from_pem, public_key_to_pem, thumbprint, unb64u
from interdict.storage.types import utcnow

TOLERANCE_S = 300
DIRECTIVE_ID = re.compile(r"d-[0-9a-f]{32}")
RECEIPT_KEY = "receipt.key"
RECEIPT_PUBLIC_KEY = "receipt-public.pem"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS directive (
    directive_id TEXT PRIMARY KEY,   -- the idempotency key: one row per directive, ever
    issuer TEXT NOT NULL, entry_id TEXT NOT NULL, revision INTEGER NOT NULL,
    action TEXT NOT NULL, jws TEXT NOT NULL, received_at TEXT NOT NULL)
"""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass(frozen=True)
class Applied:
    """What the receipt for one directive says (``Receiver.apply``)."""

    status: str
    detail: str | None = None
    action: str | None = None
    flag: Flag | None = None
    erased: bool | None = None


#: the agency's decision on a verified impose or amend: a Flag to refuse to act on it
FlagHook = Callable[[dict[str, Any]], Flag | None]


def _refuse(status: int, code: str, message: str) -> Answer:
    return Answer(status, json.dumps({"code": code, "message": message}).encode())


class Receiver:
    """The receiving side of one agency: checks, an idempotent store, signed receipts."""

    def __init__(self, *, agency: str, database: Path, engine_keys: Mapping[str, bytes],
                 signer: jws.Signer, clock: Callable[[], float] = time.time,
                 flag: FlagHook | None = None) -> None:
        self.agency = agency
        self.flag = flag
        self.engine_keys = dict(engine_keys)
        self.signer = signer
        self.clock = clock
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, *, agency: str, data_dir: Path, engine_key_file: Path) -> Receiver:
        """A receiver keeping its store and receipt key (created on first use) in ``data_dir``."""
        data_dir.mkdir(parents=True, exist_ok=True)
        key_path = data_dir / RECEIPT_KEY
        key = keyfile.load(key_path) if key_path.exists() else keyfile.generate(key_path)
        signer = jws.Signer(key)
        (data_dir / RECEIPT_PUBLIC_KEY).write_text(public_key_to_pem(signer.public_key))
        return cls(agency=agency, database=data_dir / "received.db",
                   engine_keys=load_engine_keys(engine_key_file), signer=signer)

    # -- HTTP-free core: tests and other servers call this --------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """The answer to one request; ``headers`` with lower-case names."""
        refused = self._check_webhook(headers, body)
        if refused is not None:
            return refused
        if method == "GET" and path.rstrip("/").endswith("/holdings"):
            listed = json.dumps({"directive_ids": self.holdings()}).encode()
            return Answer(200, listed)
        if method != "POST":
            return _refuse(405, "method", f"{method} {path} is not served here")
        if headers.get("content-type", "").split(";")[0].strip() != CONTENT_TYPE:
            return _refuse(415, "content_type", f"send the directive as {CONTENT_TYPE}")
        if not DIRECTIVE_ID.fullmatch(headers["webhook-id"]):
            return _refuse(400, "webhook.id", "webhook-id is not a directive_id (d-<32 hex>)")
        applied = self.apply(headers["webhook-id"], body.decode("ascii", "replace"))
        return Answer(200, self.receipt(headers["webhook-id"], applied).encode(), CONTENT_TYPE)

    def _check_webhook(self, headers: Mapping[str, str], body: bytes) -> Answer | None:
        webhook_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        if not webhook_id or not stamp.isdigit() or "webhook-signature" not in headers:
            return _refuse(400, "webhook.headers",
                           "webhook-id, webhook-timestamp and webhook-signature are required")
        if abs(self.clock() - int(stamp)) > TOLERANCE_S:
            return _refuse(400, "webhook.stale_timestamp",
                           f"webhook-timestamp {stamp} is more than {TOLERANCE_S} s from now")
        content = signed_content(webhook_id, stamp, body)
        for candidate in headers["webhook-signature"].split():
            version, _, encoded = candidate.partition(",")
            if version != SIGNATURE_VERSION:
                continue
            try:
                signature = base64.b64decode(encoded, validate=True)
            except ValueError:
                continue
            for key in self.engine_keys.values():
                try:
                    jws.verify_key(key).verify(content, signature)
                    return None
                except (nacl.exceptions.BadSignatureError, ValueError):
                    continue
        return _refuse(401, "webhook.signature",
                       "no v1a webhook-signature verifies under interdict's engine keys")

    def apply(self, webhook_id: str, token: str) -> Applied:
        """Store a directive once; what its receipt says."""
        try:
            document = self._verified(token, webhook_id)
        except (VerificationError, DocumentError) as exc:
            return Applied("rejected", f"{exc.code}: {exc.message}")
        action, ref = document["action"], document["entry_ref"]
        flag = self.flag(document) if self.flag is not None and action != "lift" else None
        if flag is not None:  # not stored: the agency does not act on it, nor keep its subject
            return Applied("flagged", action=action, flag=flag)
        with self._lock:
            inserted = self._db.execute(
                "INSERT INTO directive VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (directive_id) DO NOTHING",
                (webhook_id, ref["issuer"], ref["entry_id"], ref["revision"],
                 action, token, utcnow().isoformat())).rowcount
            erased = self._erase(ref, webhook_id) if action == "lift" else None
        if inserted:
            return Applied("applied", action=action, erased=erased)
        return Applied("duplicate", "already received", action, erased=erased)

    def _erase(self, ref: Mapping[str, Any], lift_id: str) -> bool:
        """A lift deletes the subject's data kept for its entry: the stored JWS of the
        directives it ends, i.e. those older than it (their ids, actions and revisions stay,
        for holdings). True when nothing about the subject is left for the entry: no newer
        directive holds any (a re-routed impose can be newer at the same revision)."""
        rows = self._db.execute(
            "SELECT directive_id, issuer, entry_id, revision, action, jws FROM directive "
            "WHERE issuer = ? AND entry_id = ? AND jws != ''",
            (ref["issuer"], ref["entry_id"])).fetchall()
        lift = next((row for row in rows if row[0] == lift_id), None)
        if lift is None:  # a repeat of a lift a newer lift has since superseded
            return all(row[4] == "lift" for row in rows)
        older = [(row[0],) for row in rows if row[0] != lift_id and _order(row) < _order(lift)]
        self._db.executemany("UPDATE directive SET jws = '' WHERE directive_id = ?", older)
        return all(row[4] == "lift" or _order(row) < _order(lift) for row in rows)

    def _verified(self, token: str, webhook_id: str) -> dict[str, Any]:
        document = verify_directive(token, agency=self.agency, engine_keys=self.engine_keys)
        if document["directive_id"] != webhook_id:
            raise VerificationError("webhook-id is not the directive's directive_id",
                                    code="directive.id_mismatch")
        return document

    def receipt(self, directive_id: str, applied: Applied) -> str:
        document = receipt_document(directive_id, self.agency, applied.status,
                                    action=applied.action, detail=applied.detail,
                                    flag=applied.flag, erased=applied.erased)
        return self.signer.sign_document(document, jws.TYP_RECEIPT)

    # -- what it holds -----------------------------------------------------------------------

    def holdings(self) -> list[str]:
        """Per entry, the latest directive when it imposes or amends: by revision, then by
        ``issued_at`` (a measure policy re-routes an entry without a new revision: a lift,
        then an impose when a later policy gives the measure back); at the same revision and
        time a lift ends an imposition, as expiry does."""
        with self._lock:
            rows = self._db.execute(
                "SELECT directive_id, issuer, entry_id, revision, action, jws FROM directive"
            ).fetchall()
        latest: dict[tuple[str, str], tuple[str, str]] = {}
        for directive_id, issuer, entry_id, _, action, _ in sorted(rows, key=_order):
            latest[(issuer, entry_id)] = (directive_id, action)
        return sorted(d for d, action in latest.values() if action != "lift")

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT directive_id, action, jws FROM directive "
                                    "ORDER BY received_at").fetchall()
        return [{"directive_id": d, "action": a, "jws": t} for d, a, t in rows]

    def close(self) -> None:
        self._db.close()


def _order(row: tuple[Any, ...]) -> tuple[int, str, bool]:
    # issued_at normalised to one format, so the strings order as the times (every stored
    # token was verified before it was stored)
    # A blank token was erased by a lift, so it was older than that lift: first at its revision.
    if not row[5]:
        return row[3], "", False
    issued = json.loads(unb64u(row[5].split(".")[1]))["issued_at"]
    return row[3], _utc(issued), row[4] == "lift"


def _utc(stamp: str) -> str:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).isoformat(
        timespec="microseconds")


def load_engine_keys(path: Path) -> dict[str, bytes]:
    """interdict's engine public keys from a PEM file (one or more keys) or a JWKS / JWK.

    Raises:
        ConfigError: the file is missing or holds no Ed25519 public key.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read engine keys {path}: {exc}", code="receiver.keys") from None
    raws: list[bytes] = []
    try:
        if "-----BEGIN PUBLIC KEY-----" in text:
            blocks = text.split("-----END PUBLIC KEY-----")[:-1]
            raws = [public_key_from_pem(b + "-----END PUBLIC KEY-----\n") for b in blocks]
        else:
            data = json.loads(text)
            jwks = data.get("keys", [data]) if isinstance(data, dict) else []
            raws = [unb64u(k["x"]) for k in jwks
                    if k.get("kty") == "OKP" and k.get("crv") == "Ed25519"]
    except (ValueError, KeyError, VerificationError) as exc:
        raise ConfigError(f"{path}: not Ed25519 public keys as PEM or JWKS ({exc})",
                          code="receiver.keys") from None
    if not raws or any(len(r) != 32 for r in raws):
        raise ConfigError(f"{path} holds no Ed25519 public key", code="receiver.keys")
    return {thumbprint(r): r for r in raws}


# -- HTTP ----------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ReceiverServer

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > jws.MAX_TOKEN_BYTES:
            self._send(_refuse(413, "too_large", f"at most {jws.MAX_TOKEN_BYTES} bytes"))
            self.close_connection = True
            return
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(self.server.receiver.answer(method, self.path, headers, body))

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("content-type", answer.content_type)
        self.send_header("content-length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: Receiver, host: str, port: int, *,
                 verbose: bool = False) -> None:
        self.receiver = receiver
        self.verbose = verbose
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> threading.Thread:
        """Serve in a background thread (tests, embedding); ``shutdown()`` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="receiver", daemon=True)
        thread.start()
        return thread
