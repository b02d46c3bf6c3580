"""JWS compact serialization (RFC 7515) with Ed25519 (RFC 8037, RFC 9864): interdict's profile.

Profile (docs/jws-profile.md): protected header ``{"alg": "Ed25519", "kid": <RFC 7638 thumbprint>,
"typ": <document kind>}``; the payload is UTF-8 JSON and is signed and verified as the exact bytes
that travel, never re-serialized. Verification is strict and each refusal has its own code:

1. the token is three base64url parts with nothing around them;
2. the header is a JSON object without duplicate keys;
3. ``alg`` is ``Ed25519`` (or ``EdDSA``, which older libraries emit, for the same key type);
4. no ``crit`` extension (we understand none); a ``kid``; the ``typ`` expected for this kind;
5. the signature verifies under the key the caller looked up by ``kid``.

Payload parsing (``parse_payload``) is a separate step, as python-tuf keeps signed bytes apart
from the model decoded from them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import nacl.exceptions
import nacl.signing
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.errors import VerificationError
from interdict.keys.jwk import b64u, raw_public_key, thumbprint, unb64u

TYP_ENTRY = "interdict-entry+jws"
TYP_DIRECTIVE = "interdict-directive+jws"
TYP_RECEIPT = "interdict-receipt+jws"
ACCEPTED_ALGS = frozenset({"Ed25519", "EdDSA"})
MAX_TOKEN_BYTES = 96 * 1024  # keeps the decoded payload under 64 KiB (docs/reason-codes.md)
MAX_DEPTH = 32
_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class CompactJWS:
    """A JWS whose structure and header are valid; its signature is not checked yet."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        return str(self.header["kid"])


class Signer:
    """Signs documents as one key; holds the libsodium key for speed, the kid for headers."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        public = raw_public_key(private_key.public_key())
        self.public_key = public
        self.kid = thumbprint(public)
        self._seed = private_key.private_bytes_raw()
        self._signing_key = nacl.signing.SigningKey(self._seed)
        self._headers: dict[str, bytes] = {}

    @classmethod
    def from_seed(cls, seed: bytes) -> Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        """The raw private key, for a signing worker of this same process (keys/offload.py):
        never to be printed, logged or stored."""
        return self._seed

    def sign(self, payload: bytes, typ: str) -> str:
        header = self._headers.get(typ)
        if header is None:
            header = b64u(orjson.dumps({"alg": "Ed25519", "kid": self.kid, "typ": typ})).encode()
            self._headers[typ] = header
        signing_input = header + b"." + b64u(payload).encode()
        signature = self._signing_key.sign(signing_input).signature
        return (signing_input + b"." + b64u(signature).encode()).decode("ascii")

    def sign_document(self, document: dict[str, Any], typ: str) -> str:
        return self.sign(canonical_json(document), typ)

    def raw_sign(self, message: bytes) -> bytes:
        return self._signing_key.sign(message).signature


def digest(token: str | bytes) -> str:
    """How documents are named in the audit log: ``sha256:`` and the hex digest of the exact
    bytes (for a JWS, its compact serialization)."""
    data = token.encode("utf-8", "surrogateescape") if isinstance(token, str) else token
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Any) -> bytes:
    """Compact JSON with sorted keys: how interdict serializes what it signs and logs."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def _fail(code: str, message: str) -> VerificationError:
    return VerificationError(message, code=code)


def parse(token: str | bytes, typ: str) -> CompactJWS:
    """Check steps 1-4 of the profile and return the parts.

    Raises:
        VerificationError: with the code of the first defect found.
    """
    raw = token.encode("utf-8", "replace") if isinstance(token, str) else bytes(token)
    if len(raw) > MAX_TOKEN_BYTES:
        raise _fail("payload.too_large", f"JWS is {len(raw)} bytes; the limit is {MAX_TOKEN_BYTES}")
    # 1. three base64url parts, nothing else
    stripped = raw.strip()
    if stripped != raw and stripped.count(b".") == 2:
        raise _fail("jws.trailing_data", "the JWS has whitespace or other data around it")
    parts = raw.split(b".")
    if len(parts) != 3 or not parts[0] or not parts[2]:
        raise _fail("jws.malformed",
                    f"a compact JWS has 3 parts (header and signature non-empty), got {len(parts)}")
    for name, part in zip(("header", "payload", "signature"), parts, strict=True):
        if part.translate(None, _B64URL):  # any byte left is outside the alphabet
            raise _fail("jws.base64", f"the {name} part has characters outside base64url")
    try:
        header_bytes, payload, signature = (unb64u(p) for p in parts)
    except ValueError as exc:
        raise _fail("jws.base64", f"a part is not valid base64url: {exc}") from None
    header = _header(header_bytes, typ)
    if len(signature) != 64:
        raise _fail("signature.invalid", f"an Ed25519 signature is 64 bytes, got {len(signature)}")
    return CompactJWS(header, payload, parts[0] + b"." + parts[1], signature)


@lru_cache(maxsize=1024)
def _header(header_bytes: bytes, typ: str) -> dict[str, Any]:
    """Steps 2-4. Cached: a signer's header is the same bytes on every document it signs.
    Callers must not mutate the returned dict."""
    try:
        header = strict_json(header_bytes)
    except VerificationError as exc:
        raise _fail("header.json", f"protected header: {exc.message}") from None
    if not isinstance(header, dict):
        raise _fail("header.json", "the protected header is not a JSON object")
    _check_header(header, typ)
    return header


def _check_header(header: dict[str, Any], typ: str) -> None:
    # 3. algorithm
    alg = header.get("alg")
    if alg not in ACCEPTED_ALGS:
        raise _fail("header.alg", f"header alg {alg!r} is not accepted; use \"Ed25519\"")
    # 4. extensions, key id, document kind
    if "crit" in header:
        raise _fail("header.crit", f"header crit {header['crit']!r} names extensions we do not "
                                   "understand")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _fail("header.kid_missing", "the header has no kid (RFC 7638 key thumbprint)")
    got = header.get("typ")
    if not isinstance(got, str) or got.lower() != typ:
        raise _fail("header.typ", f"header typ {got!r} is not {typ!r}")


@lru_cache(maxsize=4096)
def verify_key(raw_public: bytes) -> nacl.signing.VerifyKey:
    return nacl.signing.VerifyKey(raw_public)


def verify_signature(jws: CompactJWS, raw_public: bytes) -> None:
    """Step 5.

    Raises:
        VerificationError: ``signature.invalid`` when the signature does not verify.
    """
    try:
        verify_key(raw_public).verify(jws.signing_input, jws.signature)
    except nacl.exceptions.BadSignatureError:
        raise _fail("signature.invalid", f"the signature does not verify under key {jws.kid}") \
            from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # dict() runs in C; only when it lost a key do we look for which one (the rare bad case).
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _fail("payload.duplicate_key", f"duplicate JSON key {key!r}")
            seen.add(key)
    return result


def _reject_constant(name: str) -> Any:
    raise _fail("payload.non_finite", f"non-finite number {name} is not JSON")


def _finite_float(text: str) -> float:
    # 1e400 is valid JSON grammar but no finite number: refused like the NaN literal.
    value = float(text)
    if math.isinf(value):
        raise _fail("payload.non_finite", f"number {text} overflows to infinity")
    return value


_STRICT = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant,
                          parse_float=_finite_float)


def strict_json(data: bytes) -> Any:
    """Parse JSON refusing duplicate keys, NaN/Infinity, bad UTF-8 and excessive nesting.

    Raises:
        VerificationError: ``payload.json``, ``payload.duplicate_key``, ``payload.non_finite``
        or ``payload.too_deep``.
    """
    value = _canonical_or_none(data)
    if value is None:
        value = _strict_reference(data)
    # Containers can only nest as deep as there are brackets: most documents have fewer than
    # the limit, and counting bytes in C spares them the walk.
    if data.count(b"{") + data.count(b"[") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise _fail("payload.too_deep", f"nesting deeper than {MAX_DEPTH} levels")
    return value


def _canonical_or_none(data: bytes) -> dict[str, Any] | list[Any] | None:
    """The fast path, for documents in interdict's canonical form (what its own signers and
    agencies' reference code emit): orjson parses them, and a document that serializes back
    to exactly the same bytes cannot have had a duplicate key (the copy would be shorter),
    NaN, bad UTF-8 or an escape. Anything else is None, and goes to the reference parser,
    which names the defect. tests/keys/test_strict_json.py keeps the two in agreement."""
    try:
        value = orjson.loads(data)
        if isinstance(value, dict | list) and canonical_json(value) == data:
            return value
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    return None


def _strict_reference(data: bytes) -> Any:
    """The reference parser: Python's json with every refusal named."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail("payload.json", f"not UTF-8: {exc}") from None
    try:
        value = _STRICT.decode(text)
    except RecursionError:
        raise _fail("payload.too_deep", f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise _fail("payload.json", f"not JSON: {exc}") from None
    return value


def _depth(value: Any, budget: int = MAX_DEPTH + 1) -> int:
    """Nesting depth of containers, counting no further than ``budget``."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return 0
    if budget <= 1:
        return 1
    return 1 + max((_depth(child, budget - 1) for child in children), default=0)


def parse_payload(jws: CompactJWS) -> dict[str, Any]:
    """Decode the signed payload into a JSON object.

    Raises:
        VerificationError: ``payload.*`` codes as in ``strict_json``, or ``payload.not_object``.
    """
    document = strict_json(jws.payload)
    if not isinstance(document, dict):
        raise _fail("payload.not_object", f"the payload is a JSON {type(document).__name__}, "
                                          "not an object")
    return document
