"""Issuers: registering an issuing authority, and signing entries with its local key.

An issuer either lets interdict hold its key (generated in ``keys/issuer-<id>.key``) or keeps
its own and registers only the public key; then it signs with its own tools and publishes with
``interdict publish --signed`` or by writing to the public database directly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from interdict import schemas
from interdict.auditlog import log
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.keys import jws, keyfile, truststore
from interdict.keys.jwk import public_key_from_pem
from interdict.storage import transaction
from interdict.storage.models import Issuer


def add(installation: Installation, issuer_id: str, *, name: str, measures: list[str],
        public_key_pem: str | None = None, actor: str | None = None) -> str:
    """Register an issuer with one key; return the key's kid."""
    unknown = set(measures) - set(schemas.load("common")["$defs"]["measure_type"]["enum"])
    if unknown:
        raise UsageError(f"unknown measure types: {', '.join(sorted(unknown))}",
                         code="issuer.measures")
    id_schema = schemas.load("common")["$defs"]["id"]
    if not schemas.validator_for_definition(id_schema).is_valid(issuer_id):
        raise UsageError(f"issuer id {issuer_id!r} must match {id_schema['pattern']}",
                         code="issuer.id")
    actor = actor or log.operator()
    with transaction(installation.db) as session:
        truststore.add_issuer(session, issuer_id=issuer_id, name=name, measures=measures,
                              actor=actor)
        if public_key_pem is not None:
            raw = public_key_from_pem(public_key_pem)
        else:
            raw = jws.Signer(keyfile.generate(installation.issuer_key_path(issuer_id))).public_key
        key = truststore.register_key(session, owner_kind="issuer", owner_id=issuer_id,
                                      public_key=raw, actor=actor)
        return key.kid


def add_key(installation: Installation, issuer_id: str, *, public_key_pem: str | None = None,
            valid_from: datetime | None = None, actor: str | None = None) -> str:
    """Give a registered issuer another key and return its kid (rotation without downtime).

    With a PEM, the issuer keeps its private key. Without one, a new local key pair replaces
    the local signing key; the previous file stays beside it as ``issuer-<id>.<kid>.key`` and
    its key stays trusted until it is retired or revoked.

    Raises:
        UsageError: ``issuer.unknown``, ``key.exists``.
        ConfigError: ``issuer.no_local_key`` (no PEM given for an issuer that signs elsewhere).
    """
    actor = actor or log.operator()
    if public_key_pem is not None:
        raw = public_key_from_pem(public_key_pem)
        with transaction(installation.db) as session:
            return truststore.add_issuer_key(session, issuer_id=issuer_id, public_key=raw,
                                             actor=actor, valid_from=valid_from).kid
    with transaction(installation.db) as session:
        if session.get(Issuer, issuer_id) is None:
            raise UsageError(f"issuer {issuer_id!r} is not registered", code="issuer.unknown")
    current = installation.issuer_key_path(issuer_id)
    previous = installation.issuer_signer(issuer_id)  # raises issuer.no_local_key
    pending = current.with_name(f"issuer-{issuer_id}.pending-{secrets.token_hex(4)}.key")
    signer = jws.Signer(keyfile.generate(pending))
    try:
        with transaction(installation.db) as session:
            truststore.add_issuer_key(session, issuer_id=issuer_id, public_key=signer.public_key,
                                      actor=actor, valid_from=valid_from)
    except BaseException:
        pending.unlink(missing_ok=True)  # never trusted, never used to sign
        raise
    os.replace(current, current.with_name(f"issuer-{issuer_id}.{previous.kid}.key"))
    os.replace(pending, current)
    return signer.kid


def sign(installation: Installation, issuer_id: str,
         documents: Iterable[dict[str, Any]]) -> list[str]:
    """Sign entries with the issuer's local key, exactly as the issuer's own tools would."""
    signer = installation.issuer_signer(issuer_id)
    return [signer.sign_document(document, jws.TYP_ENTRY) for document in documents]
