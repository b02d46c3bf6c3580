"""A realistic simulated agency system: its own database, its own receipt key, strict checks.

The built-in ``travel``, ``loans`` and ``permits`` adapters are such systems. Each keeps what it
was told in a SQLite file of its own (``<home>/agencies/<id>/agency.db``), verifies every
directive's signature against interdict's public keys before acting, applies each
``directive_id`` once, and signs its receipts (v2) with its own key (``receipt.key`` beside
it), as a real agency would. Tests and the demo use them exactly as they would use a real
agency.

An agency may refuse to act on a directive it verified (``_flag``: the receipt says
``flagged`` with a reason code; travel does when it received no identifier it can match a
booking on). A lift is never flagged: it ends the restriction, deletes the subject's data the
agency held for that entry, and its receipt confirms that with ``erased: true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from interdict.agencies import process
from interdict.agencies.base import Adapter, AdapterContext
from interdict.agencies.inbound import Flag, receipt_document, verify_directive
from interdict.errors import DocumentError, VerificationError
from interdict.keys import jws, keyfile
from interdict.keys.jwk import unb64u
from interdict.storage import bulk
from interdict.storage.database import engine_for
from interdict.storage.types import UTCDateTime, utcnow

metadata = sa.MetaData()
received = sa.Table(
    "received", metadata,
    sa.Column("directive_id", sa.String(80), primary_key=True),
    sa.Column("action", sa.String(10), nullable=False),
    sa.Column("entry_key", sa.String(260), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
)
restriction = sa.Table(
    "restriction", metadata,
    sa.Column("entry_key", sa.String(260), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("directive_id", sa.String(80), nullable=False),
    sa.Column("document", sa.JSON, nullable=False),  # the verified directive payload
    sa.Column("status", sa.String(10), nullable=False),  # active | lifted
    sa.Column("lifted_at", UTCDateTime()),
)

RECEIPT_KEY = "receipt.key"
_INSERT_RECEIVED = received.insert()
_INSERT_RESTRICTION = restriction.insert()


@dataclass(frozen=True)
class Answer:
    """What the receipt for one directive says."""

    directive_id: str
    status: str
    detail: str | None = None
    action: str | None = None
    flag: Flag | None = None
    erased: bool | None = None


# What a lifted restriction keeps of its directive: enough to order later directives for the
# entry, nothing about the person (the subject, and the case's reason, are deleted).
KEPT_AFTER_LIFT = ("directive_id", "agency", "action", "entry_ref", "effective_from",
                   "issued_at", "policy")


@dataclass(frozen=True)
class Decision:
    """The answer to a person's query at the agency: allowed or not, and why."""

    allowed: bool
    restrictions: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "restrictions": self.restrictions}


class SimulatedAgency(Adapter):
    """An agency system kept in its own database; subclasses add their domain's queries."""

    name = "simulated"

    @classmethod
    def provision(cls, context: AdapterContext) -> bytes:
        """Create the agency's folder and receipt key; return the raw public key."""
        context.data_dir.mkdir(parents=True, exist_ok=True)
        path = context.data_dir / RECEIPT_KEY
        key = keyfile.load(path) if path.exists() else keyfile.generate(path)
        return jws.Signer(key).public_key

    @cached_property
    def _signer(self) -> jws.Signer:
        return jws.Signer(keyfile.load(self.context.data_dir / RECEIPT_KEY))

    @cached_property
    def db(self) -> Engine:
        self.context.data_dir.mkdir(parents=True, exist_ok=True)
        engine = engine_for(f"sqlite:///{self.context.data_dir / 'agency.db'}")
        metadata.create_all(engine)
        self._create_domain_tables(engine)
        return engine

    def _create_domain_tables(self, engine: Engine) -> None:
        """Subclasses with tables of their own create them here."""

    # -- the protocol ----------------------------------------------------------------------

    def _deliver(self, directives: Sequence[str]) -> Sequence[str]:
        if self.context.manifest.get("settings", {}).get(process.SETTING) == process.OWN:
            try:
                return self._process.deliver(directives)
            except BaseException:
                self.close()  # the pipe may be out of step: the next batch starts a new one
                raise
        return self.deliver_here(directives)

    @cached_property
    def _process(self) -> process.AgencyProcess:
        return process.AgencyProcess(type(self), self.context)

    def close(self) -> None:
        if "_process" in self.__dict__:
            self._process.close()
            del self.__dict__["_process"]

    def deliver_here(self, directives: Sequence[str]) -> Sequence[str]:
        """Apply a batch in this process and answer with its receipts."""
        # Signatures are checked before the store's write transaction and receipts signed
        # after it commits: the transaction holds only the database work, so callers in
        # other processes (several dispatch workers) wait for each other as little as they
        # can, and no receipt says "applied" before the change is durable.
        checked = [self._checked(token) for token in directives]
        # One transaction per batch: what the batch touches is read in two queries up front
        # and written with one statement per table at the end, as a real agency system
        # applying thousands of directives would.
        with self.db.begin() as conn:
            batch = _Batch.open(conn, [d for d in checked if isinstance(d, dict)])
            answers = [self._apply_one(batch, token, document)
                       for token, document in zip(directives, checked, strict=True)]
            batch.flush()
        return [self._receipt(a.directive_id, a.status, a.detail, action=a.action, flag=a.flag,
                              erased=a.erased) for a in answers]

    def _holdings(self) -> Sequence[str]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(restriction.c.directive_id)
                                     .where(restriction.c.status == "active")).scalars())

    # -- applying --------------------------------------------------------------------------

    def _checked(self, token: str) -> dict[str, Any] | VerificationError | DocumentError:
        """The verified directive, or why it was refused (answered as ``rejected``)."""
        try:
            return self._verified(token)
        except (VerificationError, DocumentError) as exc:
            return exc

    def _apply_one(self, batch: _Batch, token: str,
                   document: dict[str, Any] | VerificationError | DocumentError) -> Answer:
        if isinstance(document, VerificationError | DocumentError):
            return Answer(_claimed_id(token), "rejected", f"{document.code}: {document.message}")
        directive_id, action = document["directive_id"], document["action"]
        # Judged on the document alone, so a repeat of a flagged directive is flagged again.
        flag = self._flag(document) if action != "lift" else None
        if flag is not None:
            if directive_id not in batch.seen:  # kept: the directive's id, never its subject
                self._received(batch, document, "flagged")
            return Answer(directive_id, "flagged", action=action, flag=flag)
        if directive_id in batch.seen:
            return Answer(directive_id, "duplicate", "already applied", action,
                           erased=self._erased(batch, document))
        detail = self._apply(batch, document)
        self._received(batch, document, "applied")
        return Answer(directive_id, "applied", detail, action,
                       erased=self._erased(batch, document))

    def _received(self, batch: _Batch, document: dict[str, Any], status: str) -> None:
        ref = document["entry_ref"]
        batch.seen.add(document["directive_id"])
        batch.received_rows.append({
            "directive_id": document["directive_id"], "action": document["action"],
            "entry_key": ref["entry_id"], "revision": ref["revision"], "status": status,
            "received_at": utcnow()})

    def _flag(self, document: dict[str, Any]) -> Flag | None:
        """Refuse to act on a verified impose or amend, with a reason code (receipt v2
        ``flagged``); None to act on it. Subclasses decide; the default acts on everything."""
        return None

    @staticmethod
    def _erased(batch: _Batch, document: dict[str, Any]) -> bool | None:
        """For a lift: does the agency now hold nothing about the subject for the entry?
        (It may not, when a newer revision is in force here.) None for other actions."""
        if document["action"] != "lift":
            return None
        current = batch.current.get(document["entry_ref"]["entry_id"])
        return current is None or current["status"] == "lifted"

    def _verified(self, token: str) -> dict[str, Any]:
        return verify_directive(token, agency=self.agency_id,
                                engine_keys=self.context.engine_keys)

    def _apply(self, batch: _Batch, document: dict[str, Any]) -> str | None:
        ref = document["entry_ref"]
        key, revision = ref["entry_id"], ref["revision"]
        current = batch.current.get(key)
        if current is not None and _supersedes(current, document):
            return f"superseded by revision {current['revision']} ({current['status']})"
        if document["action"] == "lift":
            # With no row, the lift overtook its impose: the lifted row it leaves behind
            # keeps the late impose of the same revision from bringing the restriction back.
            # The row keeps the lift's own facts (its issued_at orders what comes after it);
            # the subject's data, and the issuer's reason, go with the restriction.
            kept = {k: document[k] for k in KEPT_AFTER_LIFT if k in document}
            batch.put(key, {**(current or {}), "document": kept, "status": "lifted",
                            "lifted_at": utcnow(), "revision": revision,
                            "directive_id": document["directive_id"]})
            if current is not None and current["status"] == "active":
                self._on_lift(batch.conn, key)
            return None
        batch.put(key, {"revision": revision, "directive_id": document["directive_id"],
                        "document": document, "status": "active", "lifted_at": None})
        self._on_impose(batch.conn, key, document)
        return None

    def _on_impose(self, conn: Connection, entry_key: str, document: dict[str, Any]) -> None:
        """Domain effect of an imposition or amendment (e.g. suspend permits)."""

    def _on_lift(self, conn: Connection, entry_key: str) -> None:
        """Domain effect of a lift (e.g. reinstate suspended permits)."""

    def _receipt(self, directive_id: str, status: str, detail: str | None, *,
                 action: str | None = None, flag: Flag | None = None,
                 erased: bool | None = None) -> str:
        document = receipt_document(directive_id, self.agency_id, status, action=action,
                                    detail=detail, flag=flag, erased=erased)
        return self._signer.sign_document(document, jws.TYP_RECEIPT)

    # -- queries a person can try ----------------------------------------------------------

    def active_restrictions(self, *, identifier: str | None = None, name: str | None = None,
                            at: datetime | None = None) -> list[dict[str, Any]]:
        """Restrictions in force on a subject, found by ``scheme:value`` or by name."""
        when = at or utcnow()
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(restriction.c.document)
                                .where(restriction.c.status == "active")).scalars().all()
        return [_summary(doc) for doc in rows
                if _in_force(doc, when)
                and subject_matches(doc.get("subject", {}), identifier, name)]

    def decide(self, *, identifier: str | None = None, name: str | None = None) -> Decision:
        found = self.active_restrictions(identifier=identifier, name=name)
        return Decision(allowed=not found, restrictions=found)


@dataclass
class _Batch:
    """What one delivered batch reads and writes in the agency's store."""

    conn: Connection
    seen: set[str]  # directive ids applied before, or earlier in this batch
    current: dict[str, dict[str, Any]]  # entry key -> restriction row
    existing: set[str]  # entry keys that have a row in the store
    received_rows: list[dict[str, Any]] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)

    @classmethod
    def open(cls, conn: Connection, verified: Sequence[dict[str, Any]]) -> _Batch:
        # Only verified directives touch the store, so only theirs are read up front.
        ids = {document["directive_id"] for document in verified}
        keys = {document["entry_ref"]["entry_id"] for document in verified}
        seen = set(conn.execute(sa.select(received.c.directive_id)
                                .where(received.c.directive_id.in_(ids))).scalars())
        rows = conn.execute(sa.select(restriction).where(restriction.c.entry_key.in_(keys)))
        current = {r.entry_key: dict(r._mapping) for r in rows}
        return cls(conn, seen, current, set(current))

    def put(self, key: str, row: dict[str, Any]) -> None:
        self.current[key] = {**row, "entry_key": key}
        self.changed.add(key)

    def flush(self) -> None:
        bulk.executemany(self.conn, _INSERT_RECEIVED, self.received_rows)
        updates = [self._row(k) for k in self.changed if k in self.existing]
        inserts = [self._row(k) for k in self.changed if k not in self.existing]
        bulk.executemany(self.conn, _INSERT_RESTRICTION, inserts)
        if updates:
            self.conn.execute(
                restriction.update().where(restriction.c.entry_key == sa.bindparam("key")),
                [{**row, "key": row.pop("entry_key")} for row in updates])

    def _row(self, key: str) -> dict[str, Any]:
        row = self.current[key]
        return {column.name: row.get(column.name) for column in restriction.c}


def _supersedes(current: dict[str, Any], document: dict[str, Any]) -> bool:
    """Whether what the agency holds for an entry is newer than a directive: a later
    revision, or the same revision issued later (a measure policy re-routes an entry without
    a new revision: a lift, then an impose when a later policy gives the measure back). At
    the same revision and time a lift wins, so a late impose never undoes it."""
    held = (current["revision"], _issued(current["document"]))
    incoming = (document["entry_ref"]["revision"], _issued(document))
    return held > incoming or (held == incoming and current["status"] == "lifted")


def _issued(document: dict[str, Any]) -> datetime:
    stamp = document.get("issued_at")
    if not isinstance(stamp, str):  # a row this store did not write from a directive
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _claimed(token: str) -> dict[str, Any]:
    try:
        # only to name the directive in its rejection: nothing is decided on it
        claimed = orjson.loads(unb64u(token.split(".")[1]))
    except Exception:
        return {}
    return claimed if isinstance(claimed, dict) else {}


def _in_force(document: dict[str, Any], when: datetime) -> bool:
    start = datetime.fromisoformat(document["effective_from"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(document["expires_at"].replace("Z", "+00:00"))
    return start <= when < end


def subject_matches(subject: dict[str, Any], identifier: str | None, name: str | None) -> bool:
    if identifier:
        scheme, _, value = identifier.partition(":")
        if any(i["scheme"] == scheme and i["value"] == value
               for i in subject.get("identifiers", [])):
            return True
    if name:
        wanted = " ".join(name.casefold().split())
        if any(" ".join(n["value"].casefold().split()) == wanted for n in subject.get("names", [])):
            return True
    return False


def _summary(document: dict[str, Any]) -> dict[str, Any]:
    return {key: document.get(key) for key in
            ("directive_id", "entry_ref", "measures", "legal_basis", "reason", "effective_from",
             "expires_at", "redress")}


def _claimed_id(token: str) -> str:
    """The directive_id an unverifiable directive claims, so its receipt can be matched."""
    claimed = _claimed(token).get("directive_id", "")
    return claimed if isinstance(claimed, str) and claimed.startswith("d-") else "d-" + "0" * 32
