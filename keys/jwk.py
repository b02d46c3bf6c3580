"""Ed25519 public keys as JWKs (RFC 8037) and their RFC 7638 thumbprints, which are our key ids."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from interdict.errors import VerificationError


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str | bytes) -> bytes:
    """Strict base64url without padding (RFC 7515 section 2): anything else is refused."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    if b"=" in raw or len(raw) % 4 == 1:
        raise ValueError("not unpadded base64url")
    decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != raw:
        raise ValueError("not canonical base64url")
    return decoded


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_jwk(raw: bytes) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}


def thumbprint(raw: bytes) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    members = json.dumps(public_jwk(raw), sort_keys=True, separators=(",", ":"))
    return b64u(hashlib.sha256(members.encode()).digest())


def public_key_from_pem(pem: str | bytes) -> bytes:
    """The raw 32 bytes of an Ed25519 public key given as PEM (SubjectPublicKeyInfo).

    Raises:
        VerificationError: the PEM is not an Ed25519 public key.
    """
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise VerificationError(f"not a PEM public key: {exc}", code="key.pem") from None
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationError("the public key is not Ed25519", code="key.type")
    return raw_public_key(key)


def public_key_to_pem(raw: bytes) -> str:
    key = Ed25519PublicKey.from_public_bytes(raw)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
