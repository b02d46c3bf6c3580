"""The trust store: which public keys belong to whom, and whether they may be trusted now.

It lives in the operational database; every change is an audit event in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from interdict.auditlog import log
from interdict.errors import UsageError, VerificationError
from interdict.keys.jwk import b64u, thumbprint, unb64u
from interdict.storage.models import Issuer, TrustedKey
from interdict.storage.types import utcnow

OWNER_KINDS = ("issuer", "agency", "engine", "log")


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    owner_kind: str
    owner_id: str
    public_key: bytes
    status: str
    valid_from: datetime
    valid_until: datetime | None

    def usable_at(self, when: datetime) -> str | None:
        """None when the key may vouch for something signed at ``when``, else a reason code."""
        if self.status == "revoked":
            return "key.revoked"
        if when < self.valid_from or (self.valid_until is not None and when > self.valid_until):
            return "key.outside_validity"
        return None


def register_key(session: Session, *, owner_kind: str, owner_id: str, public_key: bytes,
                 actor: str, valid_from: datetime | None = None) -> TrustedKey:
    """Add a key (idempotent for the same owner); refuse a key already owned by someone else."""
    if owner_kind not in OWNER_KINDS:
        raise UsageError(f"unknown key owner kind {owner_kind!r}")
    kid = thumbprint(public_key)
    existing = session.get(TrustedKey, kid)
    if existing is not None:
        if (existing.owner_kind, existing.owner_id) != (owner_kind, owner_id):
            raise VerificationError(
                f"key {kid} already belongs to {existing.owner_kind} {existing.owner_id}",
                code="key.owned_elsewhere")
        return existing
    key = TrustedKey(kid=kid, owner_kind=owner_kind, owner_id=owner_id,
                     public_key=b64u(public_key), status="active",
                     valid_from=valid_from or utcnow())
    session.add(key)
    log.append(session, [log.event("key.added", actor=actor, kid=kid, owner_kind=owner_kind,
                                   owner=owner_id)])
    return key


def keys_of(session: Session, owner_kind: str, owner_id: str) -> list[KeyInfo]:
    rows = session.execute(sa.select(TrustedKey).where(
        TrustedKey.owner_kind == owner_kind, TrustedKey.owner_id == owner_id)).scalars()
    return [_info(row) for row in rows]


def _info(row: TrustedKey) -> KeyInfo:
    return KeyInfo(row.kid, row.owner_kind, row.owner_id, unb64u(row.public_key), row.status,
                   row.valid_from, row.valid_until)


@dataclass(frozen=True)
class TrustSnapshot:
    """Everything admission needs from the trust store, read once per batch."""

    keys: dict[str, KeyInfo]
    issuer_measures: dict[str, frozenset[str]]

    @classmethod
    def load(cls, session: Session) -> TrustSnapshot:
        keys = {row.kid: _info(row) for row in session.execute(sa.select(TrustedKey)).scalars()}
        issuers = {row.id: frozenset(row.measures)
                   for row in session.execute(sa.select(Issuer)).scalars()}
        return cls(keys, issuers)

    def keys_of(self, owner_kind: str) -> dict[str, bytes]:
        """kid -> raw public key of every non-revoked key of one kind of owner."""
        return {k.kid: k.public_key for k in self.keys.values()
                if k.owner_kind == owner_kind and k.status != "revoked"}


def add_issuer(session: Session, *, issuer_id: str, name: str, measures: list[str],
               actor: str) -> Issuer:
    """Register an issuing authority and the measure types it may impose."""
    if session.get(Issuer, issuer_id) is not None:
        raise UsageError(f"issuer {issuer_id!r} is already registered", code="issuer.exists")
    issuer = Issuer(id=issuer_id, name=name, measures=sorted(set(measures)))
    session.add(issuer)
    log.append(session, [log.event("issuer.added", actor=actor, issuer=issuer_id,
                                   measures=",".join(issuer.measures))])
    return issuer
