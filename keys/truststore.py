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
                                   owner=owner_id, valid_from=_iso(valid_from))])
    return key


def add_issuer_key(session: Session, *, issuer_id: str, public_key: bytes, actor: str,
                   valid_from: datetime | None = None) -> TrustedKey:
    """Give a registered issuer one more key (rotation: the new key signs from now on, the
    old ones keep verifying until retired or revoked).

    Raises:
        UsageError: ``issuer.unknown`` when the issuer is not registered, ``key.exists`` when
            the issuer already has this key.
        VerificationError: ``key.owned_elsewhere`` when someone else owns the key.
    """
    if session.get(Issuer, issuer_id) is None:
        raise UsageError(f"issuer {issuer_id!r} is not registered; `interdict issuer add` it "
                         "first", code="issuer.unknown")
    existing = session.get(TrustedKey, thumbprint(public_key))
    if existing is not None and (existing.owner_kind, existing.owner_id) == ("issuer", issuer_id):
        raise UsageError(f"issuer {issuer_id!r} already has key {existing.kid} "
                         f"({existing.status})", code="key.exists")
    return register_key(session, owner_kind="issuer", owner_id=issuer_id,
                        public_key=public_key, actor=actor, valid_from=valid_from)


def retire_key(session: Session, *, owner_kind: str, owner_id: str, kid: str, actor: str,
               at: datetime | None = None) -> TrustedKey:
    """End a key's validity window at ``at`` (now): it still verifies what was published
    while it was valid, and nothing published after.

    Raises:
        UsageError: ``key.unknown``, ``key.owned_elsewhere`` or ``key.not_active`` (the key is
            already retired or revoked: retiring again would move its window).
    """
    key = _owned_key(session, owner_kind, owner_id, kid)
    if key.status != "active":
        raise UsageError(f"key {kid} of {owner_kind} {owner_id} is already {key.status}",
                         code="key.not_active")
    when = at or utcnow()
    key.status = "retired"
    key.valid_until = when if key.valid_until is None else min(key.valid_until, when)
    session.add(key)
    log.append(session, [log.event("key.retired", actor=actor, kid=kid, owner_kind=owner_kind,
                                   owner=owner_id, valid_until=_iso(key.valid_until))])
    return key


def revoke_key(session: Session, *, owner_kind: str, owner_id: str, kid: str,
               actor: str) -> TrustedKey:
    """Withdraw all trust from a key (lost or compromised): from now on it verifies nothing
    that is not already accepted, whatever its signing time. Revoking a retired key is allowed.

    Raises:
        UsageError: ``key.unknown``, ``key.owned_elsewhere`` or ``key.not_active`` (already
            revoked).
    """
    key = _owned_key(session, owner_kind, owner_id, kid)
    if key.status == "revoked":
        raise UsageError(f"key {kid} of {owner_kind} {owner_id} is already revoked",
                         code="key.not_active")
    previous = key.status
    key.status = "revoked"
    session.add(key)
    log.append(session, [log.event("key.revoked", actor=actor, kid=kid, owner_kind=owner_kind,
                                   owner=owner_id, previous=previous)])
    return key


def _owned_key(session: Session, owner_kind: str, owner_id: str, kid: str) -> TrustedKey:
    key = session.get(TrustedKey, kid)
    if key is None:
        raise UsageError(f"no key {kid!r} in the trust store (see `interdict issuer show "
                         f"{owner_id}`)", code="key.unknown")
    if (key.owner_kind, key.owner_id) != (owner_kind, owner_id):
        raise UsageError(f"key {kid} belongs to {key.owner_kind} {key.owner_id}, not to "
                         f"{owner_kind} {owner_id}", code="key.owned_elsewhere")
    return key


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


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
