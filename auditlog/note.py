"""C2SP signed notes and transparency-log checkpoints, Ed25519 only.

A signed note (https://c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank line,
then one or more signature lines ``— <key name> base64(key ID || signature)``. A checkpoint
(https://c2sp.org/tlog-checkpoint) is a note whose text is ``origin``, ``size`` and
``base64(root hash)`` on three lines, optionally followed by extension lines.

Keys travel as the strings golang.org/x/mod/sumdb/note uses, so they interoperate with Go
tooling (the witness, sumdb and tlog ecosystems)::

    verifier key   <name>+<hex key ID>+base64(0x01 || 32-byte public key)
    signer key     PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte seed)

Every failure raises :class:`AuditError` with one of the codes ``note.key`` (a key string or
key name is unusable), ``note.text`` (text that cannot be signed), ``note.malformed`` (a note
that does not parse), ``note.signature`` (a known key's signature does not verify),
``note.unverified`` (no known key signed the note) or ``checkpoint.malformed``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interdict.errors import AuditError

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "add_signature",
    "key_id",
    "open_note",
    "sign_note",
    "skey_string",
    "vkey_string",
]

# signed-note "Signature types": 0x01 is Ed25519 over the note text (RFC 8032).
ALG_ED25519 = 0x01
# The spec says verifiers MUST accept at least 16 signatures and SHOULD cap them; Go's
# sumdb/note caps at 100, so notes it accepts are accepted here too.
MAX_SIGNATURES = 100

_SIG_PREFIX = "\u2014 "  # em dash, space
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")
# ASCII control characters other than newline are forbidden anywhere in a note (signed-note
# "Format"); \x7f (DEL) is not below U+0020 and so is allowed, as in Go.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _b64decode(value: str, what: str, code: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), padded and canonical.

    Re-encoding and comparing rejects strings with stray bits in the last character, so each
    value has exactly one text form and a note cannot be altered without changing its bytes.
    """
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AuditError(f"{what} is not valid base64: {value!r}", code=code) from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise AuditError(f"{what} is not canonical base64: {value!r}", code=code)
    return raw


def _check_name(name: str, code: str = "note.key") -> None:
    """Key names are non-empty, with no Unicode space and no '+' (signed-note "Format")."""
    if not name:
        raise AuditError("key name is empty", code=code)
    if "+" in name:
        raise AuditError(f"key name {name!r} contains '+'", code=code)
    if any(ch.isspace() for ch in name):
        raise AuditError(f"key name {name!r} contains whitespace", code=code)
    if _CONTROL.search(name) or not _is_utf8(name):
        raise AuditError(f"key name {name!r} contains control or non-UTF-8 characters", code=code)


def _is_utf8(text: str) -> bool:
    # A Python str can hold lone surrogates, which have no UTF-8 encoding.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_id(name: str, public_key_raw: bytes) -> bytes:
    """``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` (signed-note "Ed25519 signatures")."""
    return hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key_raw
    ).digest()[:4]


def vkey_string(name: str, public_key_raw: bytes) -> str:
    """The verifier key string ``name+hex(key ID)+base64(0x01 || public key)``."""
    _check_name(name)
    if len(public_key_raw) != 32:
        raise AuditError(
            f"an Ed25519 public key is 32 bytes, got {len(public_key_raw)}", code="note.key"
        )
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key_raw).decode("ascii")
    return f"{name}+{key_id(name, public_key_raw).hex()}+{encoded}"


def skey_string(name: str, seed: bytes) -> str:
    """The signer key string ``PRIVATE+KEY+name+hex(key ID)+base64(0x01 || seed)``.

    The key ID is that of the matching public key, so a signer and its verifier agree.
    """
    _check_name(name)
    if len(seed) != 32:
        raise AuditError(f"an Ed25519 seed is 32 bytes, got {len(seed)}", code="note.key")
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    encoded = base64.b64encode(bytes([ALG_ED25519]) + seed).decode("ascii")
    return f"PRIVATE+KEY+{name}+{key_id(name, public).hex()}+{encoded}"


def _split_key(value: str, fields: int) -> list[str]:
    # Only the first fields-1 '+' separate: base64 may itself contain '+'.
    parts = value.split("+", fields - 1)
    if len(parts) != fields:
        raise AuditError(
            f"key string has {len(parts)} '+'-separated fields, expected {fields}", code="note.key"
        )
    return parts


def _parse_key_body(name: str, id_hex: str, key64: str) -> tuple[bytes, bytes]:
    """Validate ``name``, ``id_hex`` and ``key64`` of a key string; return (key ID, key)."""
    _check_name(name)
    if not _KEY_ID_HEX.fullmatch(id_hex):
        raise AuditError(f"key ID {id_hex!r} is not 8 hex digits", code="note.key")
    key = _b64decode(key64, "key", "note.key")
    if not key:
        raise AuditError("key is empty", code="note.key")
    if key[0] != ALG_ED25519:
        raise AuditError(
            f"key algorithm byte 0x{key[0]:02x} is not Ed25519 (0x01)", code="note.key"
        )
    if len(key) != 33:
        raise AuditError(f"an Ed25519 key is 32 bytes, got {len(key) - 1}", code="note.key")
    return bytes.fromhex(id_hex), key[1:]


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


class NoteVerifier:
    """A trusted Ed25519 note key: ``name``, 4-byte ``key_id`` and raw ``public_key``."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes | Ed25519PublicKey) -> None:
        _check_name(name)
        raw = (
            public_key.public_bytes_raw()
            if isinstance(public_key, Ed25519PublicKey)
            else bytes(public_key)
        )
        if len(raw) != 32:
            raise AuditError(f"an Ed25519 public key is 32 bytes, got {len(raw)}", code="note.key")
        self.name = name
        self.public_key = raw
        self.key_id = key_id(name, raw)
        self._key = Ed25519PublicKey.from_public_bytes(raw)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string, checking the key ID is the hash of name and key."""
        name, id_hex, key64 = _split_key(vkey, 3)
        claimed_id, public = _parse_key_body(name, id_hex, key64)
        verifier = cls(name, public)
        if verifier.key_id != claimed_id:
            raise AuditError(
                f"verifier key ID {id_hex} does not match its name and key "
                f"(expected {verifier.key_id.hex()})",
                code="note.key",
            )
        return verifier

    def vkey(self) -> str:
        """This key as a verifier key string."""
        return vkey_string(self.name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey()!r})"


class NoteSigner:
    """An Ed25519 note signing key with its ``name`` and 4-byte ``key_id``."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, private_key: Ed25519PrivateKey | bytes) -> None:
        _check_name(name)
        if isinstance(private_key, Ed25519PrivateKey):
            key = private_key
        else:
            if len(private_key) != 32:
                raise AuditError(
                    f"an Ed25519 seed is 32 bytes, got {len(private_key)}", code="note.key"
                )
            key = Ed25519PrivateKey.from_private_bytes(bytes(private_key))
        self._key = key
        self.name = name
        self.public_key = key.public_key().public_bytes_raw()
        self.key_id = key_id(name, self.public_key)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse a signer key string, checking the key ID is that of the derived public key."""
        private, key_word, name, id_hex, key64 = _split_key(skey, 5)
        if (private, key_word) != ("PRIVATE", "KEY"):
            raise AuditError("signer key does not start with 'PRIVATE+KEY+'", code="note.key")
        claimed_id, seed = _parse_key_body(name, id_hex, key64)
        signer = cls(name, seed)
        if signer.key_id != claimed_id:
            raise AuditError(
                f"signer key ID {id_hex} does not match its name and key "
                f"(expected {signer.key_id.hex()})",
                code="note.key",
            )
        return signer

    def skey(self) -> str:
        """This key as a signer key string (secret: store it like a private key)."""
        seed = self._key.private_bytes_raw()
        return skey_string(self.name, seed)

    def vkey(self) -> str:
        """The matching verifier key string, to publish."""
        return vkey_string(self.name, self.public_key)

    def verifier(self) -> NoteVerifier:
        """The matching :class:`NoteVerifier`."""
        return NoteVerifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature (RFC 8032, deterministic) of ``message``."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()})"


# --------------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_id: bytes
    signature: bytes
    line: str


def _check_text(text: str) -> None:
    """Text a note may carry (signed-note "Format"): UTF-8, ends in newline, no controls.

    Empty lines inside the text are allowed: the signature block is found at the *last* blank
    line, and signature lines are never empty, so the split stays unambiguous.
    """
    if not text.endswith("\n"):
        raise AuditError("note text must end with a newline", code="note.text")
    if not _is_utf8(text):
        raise AuditError("note text is not valid UTF-8", code="note.text")
    if m := _CONTROL.search(text):
        raise AuditError(
            f"note text contains control character U+{ord(m.group()):04X}", code="note.text"
        )


def _signature_line(text: str, signer: NoteSigner) -> str:
    sig = signer.sign(text.encode("utf-8"))
    return f"{_SIG_PREFIX}{signer.name} {base64.b64encode(signer.key_id + sig).decode('ascii')}\n"


def sign_note(text: str, signer: NoteSigner) -> str:
    """``text``, a blank line, and ``signer``'s signature line (signed-note "Format")."""
    _check_text(text)
    return text + "\n" + _signature_line(text, signer)


def add_signature(note: str, signer: NoteSigner) -> str:
    """Append ``signer``'s signature to an already signed note (cosigning, e.g. a witness).

    Existing signatures are not checked here (they need their own verifiers: use
    :func:`open_note`). Ed25519 is deterministic, so signing again with a key that already
    signed would repeat its line; the note is then returned unchanged.
    """
    text, lines = _parse_note(note)
    line = _signature_line(text, signer)
    if any(existing.line + "\n" == line for existing in lines):
        return note
    if len(lines) >= MAX_SIGNATURES:
        raise AuditError(f"note already has {len(lines)} signatures", code="note.malformed")
    return note + line


def _parse_signature_line(line: str) -> _SignatureLine:
    if not line.startswith(_SIG_PREFIX):
        raise AuditError(
            f"signature line {line!r} does not start with an em dash and a space",
            code="note.malformed",
        )
    name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
    if not sep or not b64:
        raise AuditError(f"signature line {line!r} has no signature", code="note.malformed")
    _check_name(name, code="note.malformed")
    raw = _b64decode(b64, f"signature of {name!r}", "note.malformed")
    if len(raw) < 5:
        # 4 bytes of key ID and at least one byte of signature.
        raise AuditError(f"signature of {name!r} is only {len(raw)} bytes", code="note.malformed")
    return _SignatureLine(name=name, key_id=raw[:4], signature=raw[4:], line=line)


def _parse_note(note: str | bytes) -> tuple[str, list[_SignatureLine]]:
    """Split a note into its text and signature lines (signed-note "Format")."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise AuditError("note is not valid UTF-8", code="note.malformed") from None
    if not _is_utf8(note):
        raise AuditError("note is not valid UTF-8", code="note.malformed")
    if m := _CONTROL.search(note):
        raise AuditError(
            f"note contains control character U+{ord(m.group()):04X}", code="note.malformed"
        )
    split = note.rfind("\n\n")
    if split < 0:
        raise AuditError("note has no blank line before its signatures", code="note.malformed")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise AuditError("note has no signature lines", code="note.malformed")
    if not block.endswith("\n"):
        raise AuditError("note does not end with a newline", code="note.malformed")
    raw_lines = block[:-1].split("\n")
    if len(raw_lines) > MAX_SIGNATURES:
        raise AuditError(
            f"note has {len(raw_lines)} signatures, more than {MAX_SIGNATURES}",
            code="note.malformed",
        )
    return text, [_parse_signature_line(line) for line in raw_lines]


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> tuple[str, list[str]]:
    """Verify ``note`` and return ``(text, names of the verifiers whose signature verified)``.

    Per signed-note "Signatures": a signature matches a verifier only if both key name and key
    ID match; signatures of unknown keys are ignored; a known key's signature that fails to
    verify rejects the whole note (``note.signature``); a note with no verified signature is
    rejected (``note.unverified``). The text MUST NOT be used if this raises.
    """
    text, lines = _parse_note(note)
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_id), v)
    message = text.encode("utf-8")
    verified: list[str] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in lines:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, sig.signature):
            raise AuditError(
                f"signature by {sig.name} (key {sig.key_id.hex()}) does not verify",
                code="note.signature",
            )
        if (sig.name, sig.key_id) not in seen:
            seen.add((sig.name, sig.key_id))
            verified.append(sig.name)
    if not verified:
        names = ", ".join(sorted({f"{s.name}+{s.key_id.hex()}" for s in lines}))
        raise AuditError(
            f"note is not signed by any trusted key (signed by: {names})", code="note.unverified"
        )
    return text, verified


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------


def _checkpoint_error(message: str) -> AuditError:
    return AuditError(f"checkpoint: {message}", code="checkpoint.malformed")


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint note text (c2sp.org/tlog-checkpoint "Note text").

    ``root_hash`` is the 32-byte RFC 6962 root of the first ``size`` leaves; ``extensions`` are
    the optional opaque lines after it (the spec does not recommend using them).
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Validate on construction so to_text() can never emit a checkpoint from_text() refuses.
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise _checkpoint_error(f"tree size {self.size!r} is not a non-negative integer")
        if len(self.root_hash) != 32:
            raise _checkpoint_error(f"root hash is {len(self.root_hash)} bytes, expected 32")
        for i, line in enumerate(self.extensions):
            _check_line(line, f"extension line {i + 1}")

    def to_text(self) -> str:
        """``origin\\nsize\\nbase64(root)\\n`` followed by the extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text, naming the first defect found."""
        if not text.endswith("\n"):
            raise _checkpoint_error("text does not end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            missing = ("origin", "tree size", "root hash")[len(lines) :]
            raise _checkpoint_error(f"missing line(s): {', '.join(missing)}")
        origin, size_line, root_line, *extensions = lines
        _check_line(origin, "origin")
        if not _DECIMAL.fullmatch(size_line):
            raise _checkpoint_error(
                f"tree size {size_line!r} is not a decimal number without leading zeros"
            )
        root = _b64decode(root_line, "checkpoint: root hash", "checkpoint.malformed")
        if len(root) != 32:
            raise _checkpoint_error(f"root hash is {len(root)} bytes, expected 32")
        return cls(origin, int(size_line), root, tuple(extensions))


def _check_line(line: str, what: str) -> None:
    if not line:
        raise _checkpoint_error(f"{what} is empty")
    if "\n" in line or _CONTROL.search(line) or not _is_utf8(line):
        raise _checkpoint_error(f"{what} {line!r} contains a newline or control character")
