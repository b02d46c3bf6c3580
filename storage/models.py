"""The operational database: one SQLModel class per table.

People edit the first group (issuers, keys, agencies) through the ORM. The hot tables (entry
revisions, directives, receipts, audit events) are declared here too, so the schema lives in one
place, but the pipeline writes them with bulk Core statements (see PERFORMANCE.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

from interdict.storage.types import UTCDateTime, utcnow


class Issuer(SQLModel, table=True):
    """An issuing authority and the measure types it may impose."""

    id: str = Field(primary_key=True, max_length=64)
    name: str
    measures: list[str] = Field(sa_column=Column(sa.JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(),
                                                                           nullable=False))

class TrustedKey(SQLModel, table=True):
    """A public key in the trust store: whose it is, and when and whether it may be trusted."""

    __tablename__ = "trusted_key"
    kid: str = Field(primary_key=True, max_length=64)
    owner_kind: str = Field(index=True)  # issuer | agency | engine | log
    owner_id: str = Field(index=True)
    public_key: str  # base64url of the raw 32-byte Ed25519 public key
    status: str = "active"  # active | retired | revoked
    valid_from: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    valid_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    added_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(),
                                                                         nullable=False))

class Agency(SQLModel, table=True):
    """A registered agency: its manifest says what it enforces and which fields it may see."""

    id: str = Field(primary_key=True, max_length=64)
    name: str
    adapter: str
    manifest: dict[str, Any] = Field(sa_column=Column(sa.JSON, nullable=False))
    enabled: bool = True
    # live | shadow | disabled | offboarded (agencies/onboarding.py); ``enabled`` is
    # ``status == "live"``, kept for the readers that only ask "deliver to it or not"
    status: str = Field(default="live", max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(),
                                                                           nullable=False))

class EntryRevision(SQLModel, table=True):
    """One accepted revision of a sanction entry, kept as the exact JWS the issuer signed."""

    __tablename__ = "entry_revision"
    __table_args__ = (sa.UniqueConstraint("issuer", "entry_id", "revision"),)
    id: int | None = Field(default=None, primary_key=True)
    issuer: str = Field(index=True)
    entry_id: str = Field(index=True)
    revision: int
    op: str
    public_seq: int = Field(index=True)
    digest: str  # sha256 hex of the JWS compact serialization
    kid: str
    jws: str = Field(sa_column=Column(sa.Text, nullable=False))
    effective_from: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    accepted_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    routed: bool = Field(default=False, index=True)

class EntryState(SQLModel, table=True):
    """The current state of each entry: its latest revision and whether it is in force."""

    __tablename__ = "entry"
    issuer: str = Field(primary_key=True)
    entry_id: str = Field(primary_key=True)
    revision: int
    status: str = Field(index=True)  # active | revoked | expired
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), index=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

class QuarantinedEntry(SQLModel, table=True):
    """A refused publication: the reason code, a human detail, and the raw bytes as published."""

    __tablename__ = "quarantine"
    id: int | None = Field(default=None, primary_key=True)
    public_seq: int = Field(index=True)
    reason: str = Field(index=True)
    detail: str
    raw: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    released: bool = False  # set when a retry accepted it

class Cursor(SQLModel, table=True):
    """How far a reader has consumed a source (the public database for ingest)."""

    name: str = Field(primary_key=True)
    position: int = 0

class Directive(SQLModel, table=True):
    """The outbox: one signed directive for one agency, delivered until a receipt proves it."""

    # Delivery's claim (directives/outbox.py) reads an agency's pending rows in outbox
    # order from ix_directive_outbox, starting at the first pending row instead of walking
    # past every delivered one, and asks for the page's entries which pending row is first
    # of its entry, answered from ix_directive_pending_entry. Without either, a claim scans
    # the agency's rows and delivery becomes quadratic in the backlog.
    __table_args__ = (sa.Index("ix_directive_entry_agency", "entry_id", "agency"),
                      sa.Index("ix_directive_outbox", "agency", "status", "id"),
                      sa.Index("ix_directive_pending_entry", "agency", "issuer", "entry_id",
                               "status"))
    id: int | None = Field(default=None, primary_key=True)  # outbox order
    directive_id: str = Field(unique=True, max_length=80)
    # Its own index, though ix_directive_outbox leads with it: an agency's rows in id order
    # (reconcile, dead-letter list) are read from it without a sort.
    agency: str = Field(index=True)
    action: str  # impose | amend | lift
    issuer: str = Field(index=True)
    entry_id: str = Field(index=True)
    revision: int
    jws: str = Field(sa_column=Column(sa.Text, nullable=False))
    # pending | delivered | rejected | flagged | dead (| shadow | withheld: never sent)
    status: str = Field(default="pending", index=True)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_error: str | None = None
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # A worker's lease on a pending row (directives/outbox.py claim): another worker skips it
    # until ``claimed_until``, so a worker that dies mid-batch strands nothing for longer.
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))

class DeliveryCircuit(SQLModel, table=True):
    """Per agency, the circuit breaker of delivery (directives/throttle.py): consecutive
    failures, and until when the agency is not called."""

    __tablename__ = "delivery_circuit"
    agency: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    open_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))

class Receipt(SQLModel, table=True):
    """An agency's signed receipt for a directive, verified before it was stored."""

    directive_id: str = Field(primary_key=True, max_length=80)
    agency: str = Field(index=True)
    status: str  # applied | rejected | duplicate | flagged (receipt v2)
    jws: str = Field(sa_column=Column(sa.Text, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

class AuditEvent(SQLModel, table=True):
    """Leaf ``seq`` of the Merkle log: the exact event bytes that were hashed, and the hash."""

    __tablename__ = "audit_event"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    event: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    leaf: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))

class AuditHead(SQLModel, table=True):
    """The log's compact range, so an append costs O(log n) and needs no full recomputation."""

    __tablename__ = "audit_head"
    id: int = Field(default=1, primary_key=True)
    size: int = 0
    compact_range: bytes = Field(default=b"", sa_column=Column(sa.LargeBinary, nullable=False))

class Checkpoint(SQLModel, table=True):
    """A signed C2SP checkpoint (in a signed note) over the log's first ``size`` leaves."""

    size: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    root: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(sa.Text, nullable=False))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

class AuditTile(SQLModel, table=True):
    """Root of the perfect subtree over leaves ``[idx * 256, (idx + 1) * 256)`` of the log.

    Derived from ``audit_event.leaf`` and immutable once the 256 leaves exist (the log only
    grows), so proofs and roots for any size read n/256 hashes instead of n (auditlog/proofs.py).
    """

    __tablename__ = "audit_tile"
    idx: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    hash: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))

class ImportRecord(SQLModel, table=True):
    """What an importer last published for one record of a list (importers/state.py), so a
    re-import publishes only what changed, even before a sync has read anything."""

    __tablename__ = "import_record"
    issuer: str = Field(primary_key=True, max_length=64)
    source: str = Field(primary_key=True, max_length=32)  # un-sc | us-csl
    record_id: str = Field(primary_key=True, max_length=128)
    entry_id: str
    revision: int
    digest: str  # sha256 of the record's content as last published
    status: str  # active | revoked
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

class ImportRun(SQLModel, table=True):
    """One import of a list snapshot. ``pending`` between writing the plan and publishing it,
    so a crash in between is settled by the next import (published or not, never twice)."""

    __tablename__ = "import_run"
    id: int | None = Field(default=None, primary_key=True)
    issuer: str = Field(index=True, max_length=64)
    source: str = Field(max_length=32)
    file: str
    sha256: str
    generated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = "pending"  # pending | done | abandoned
    first_token: str | None = Field(default=None, sa_column=Column(sa.Text))
    changes: list[Any] = Field(default_factory=list, sa_column=Column(sa.JSON, nullable=False))
    summary: dict[str, Any] = Field(default_factory=dict,
                                    sa_column=Column(sa.JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

class AppliedPolicy(SQLModel, table=True):
    """A measure policy as applied (accountability/policy.py): the latest row is in force.
    ``document`` is the canonical JSON whose sha256 is ``digest``."""

    __tablename__ = "applied_policy"
    id: int | None = Field(default=None, primary_key=True)
    digest: str = Field(max_length=80, index=True)
    document: str = Field(sa_column=Column(sa.Text, nullable=False))
    applied_by: str = Field(max_length=200)
    applied_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

class Escalation(SQLModel, table=True):
    """A duty warning raised once (accountability/): ``lift.late`` per directive id,
    ``review.due`` per entry revision. The row makes raising it again a no-op."""

    kind: str = Field(primary_key=True, max_length=40)
    ref: str = Field(primary_key=True, max_length=300)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))

class Objection(SQLModel, table=True):
    """An objection a person lodged with the issuer against an entry, as an operator or the
    issuer recorded it (accountability/objections.py). Dates and the outcome only: the person
    objects through the entry's ``redress`` route, so nothing about them is kept here."""

    id: int | None = Field(default=None, primary_key=True)
    issuer: str = Field(max_length=64, index=True)
    entry_id: str = Field(max_length=200, index=True)
    received_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    # upheld | partly_upheld | rejected | withdrawn; None while undecided
    outcome: str | None = Field(default=None, max_length=16)
    recorded_by: str = Field(max_length=200)
