"""Ed25519 public keys as JWKs (RFC 8037) and their RFC 7638 thumbprints, which are our key ids."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from interdict.errors import VerificationError


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def unb64u(text: str | bytes) -> bytes:
    """Strict base64url without padding (RFC 7515 section 2): anything else is refused.

    binascii directly: every token is decoded in three parts on the hot path, and the
    ``base64`` module's wrappers cost more than the decoding. Re-encoding the result must give
    back the input, which refuses the standard alphabet's ``+/`` and non-zero trailing bits.

    Raises:
        ValueError: (``binascii.Error`` is one) the text is not canonical unpadded base64url.
    """
    raw = text.encode("ascii") if isinstance(text, str) else text
    if b"=" in raw or len(raw) % 4 == 1:
        raise ValueError("not unpadded base64url")
    decoded = binascii.a2b_base64(raw.translate(_FROM_URLSAFE) + b"=" * (-len(raw) % 4))
    if binascii.b2a_base64(decoded, newline=False).translate(_TO_URLSAFE).rstrip(b"=") != raw:
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
