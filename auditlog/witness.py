"""Witness cosignatures on checkpoints (https://c2sp.org/tlog-cosignature, Ed25519 type).

A witness (here: an agency, or anyone) that has checked a checkpoint adds one signature line
to the note. What it signs is not the note text itself but::

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint's note text, every line, final newline included>

and the line is ``— <name> base64(key ID || u64 big-endian timestamp || Ed25519 signature)``,
with key ID ``SHA-256(name || "\\n" || 0x04 || public key)[:4]``. Its verifier key string is
``name+hex(key ID)+base64(0x04 || public key)``. The log's own signature (type 0x01) is
untouched, so a cosigned checkpoint still opens with the log's key alone.

A cosignature says: at that time, this was the largest tree the witness had seen for the
origin, consistent with everything it saw before. So the operator cannot show two agencies two
different logs without one of the witnesses holding a signed checkpoint the other log cannot
be consistent with.

Error codes: ``witness.key`` (a key or key string is unusable), ``witness.signature`` (a known
witness's cosignature does not verify), ``witness.malformed``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from interdict.auditlog.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    _b64decode,
    _check_name,
    _parse_note,
    open_note,
)
from interdict.errors import AuditError
from interdict.keys import keyfile

__all__ = ["ALG_COSIGNATURE_V1", "WitnessSigner", "WitnessVerifier", "cosigned_by", "message"]

ALG_COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1"
_MAX_TIMESTAMP = 2**63 - 1


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_COSIGNATURE_V1])
                          + public_key).digest()[:4]


def message(text: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signs, for the note text ``text`` of a checkpoint."""
    return f"{HEADER}\ntime {timestamp}\n{text}".encode()


def _key_error(message_: str) -> AuditError:
    return AuditError(message_, code="witness.key")


class WitnessVerifier:
    """A witness's name and Ed25519 public key, as trusted by whoever checks cosignatures."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_name(name, code="witness.key")
        if len(public_key) != 32:
            raise _key_error(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, self.public_key)
        self._key = Ed25519PublicKey.from_public_bytes(self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> WitnessVerifier:
        """Parse ``name+hex(key ID)+base64(0x04 || key)``, checking the key ID."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise _key_error(f"witness key {vkey!r} is not name+keyid+key")
        name, id_hex, key64 = parts
        raw = _b64decode(key64, "witness key", "witness.key")
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise _key_error(f"witness key of {name!r} is not a cosignature/v1 (0x04) Ed25519 "
                             "key; a signed-note (0x01) key signs checkpoints, not cosignatures")
        verifier = cls(name, raw[1:])
        if id_hex.lower() != verifier.key_id.hex():
            raise _key_error(f"witness key ID {id_hex} does not match its name and key "
                             f"(expected {verifier.key_id.hex()})")
        return verifier

    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: str, timestamp: int, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message(text, timestamp))
        except InvalidSignature:
            return False
        return True


class WitnessSigner:
    """A witness's signing key. Load it from an interdict key file or a signed-note key."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name, code="witness.key")
        self.name = name
        self._key = private_key
        self.verifier = WitnessVerifier(name, private_key.public_key().public_bytes_raw())

    @classmethod
    def from_file(cls, path: Path, name: str | None) -> WitnessSigner:
        """An Ed25519 key file (OpenSSH, encrypted with ``INTERDICT_KEY_PASSPHRASE``; needs
        ``name``) or a file holding a signed-note signer key ``PRIVATE+KEY+name+id+key``
        (its name is used; ``name``, if given, must agree).

        Raises:
            AuditError: ``witness.key``; ConfigError from :mod:`interdict.keys.keyfile`.
        """
        try:
            head = path.read_bytes()[:12]
        except OSError as exc:
            raise _key_error(f"cannot read witness key {path}: {exc.strerror}") from None
        if head == b"PRIVATE+KEY+":
            signer = NoteSigner.from_skey(path.read_text().strip())
            if name is not None and name != signer.name:
                raise _key_error(f"--name {name!r} differs from the key's name {signer.name!r}")
            return cls(signer.name, _seed_of(signer))
        if name is None:
            raise _key_error(f"{path} is a key file without a name: give --name, e.g. the "
                             "agency's domain and '/witness'")
        return cls(name, keyfile.load(path))

    def cosign(self, note: str, timestamp: int | None = None) -> str:
        """``note`` with this witness's cosignature line appended (one per key: signing a
        note it already cosigned replaces nothing and adds nothing)."""
        text, lines = _parse_note(note)
        Checkpoint.from_text(text)  # only checkpoints are cosigned
        if any(line.name == self.name and line.key_id == self.verifier.key_id
               for line in lines):
            return note
        when = int(time.time()) if timestamp is None else timestamp
        if not 0 <= when <= _MAX_TIMESTAMP:
            raise AuditError(f"timestamp {when} is out of range", code="witness.malformed")
        signature = self._key.sign(message(text, when))
        body = self.verifier.key_id + struct.pack(">Q", when) + signature
        return note + f"\u2014 {self.name} {base64.b64encode(body).decode()}\n"


def _seed_of(signer: NoteSigner) -> Ed25519PrivateKey:
    # NoteSigner keeps its key private; its skey string is the documented way out.
    raw = base64.b64decode(signer.skey().split("+", 4)[4])
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


@dataclass(frozen=True)
class Cosignature:
    name: str
    vkey: str
    timestamp: int


def cosigned_by(note: str, witnesses: list[WitnessVerifier]) -> list[Cosignature]:
    """The cosignatures on ``note`` by ``witnesses`` that verify; others' lines are ignored.

    Raises:
        AuditError: ``witness.signature`` when a known witness's line does not verify (a
            forged cosignature is an alarm, not a missing one); ``witness.malformed``.
    """
    text, lines = _parse_note(note)
    known = {(w.name, w.key_id): w for w in witnesses}
    found: list[Cosignature] = []
    for line in lines:
        witness = known.get((line.name, line.key_id))
        if witness is None:
            continue
        if len(line.signature) != 8 + 64:
            raise AuditError(f"cosignature by {line.name} is {len(line.signature)} bytes, "
                             "expected 8 (timestamp) + 64", code="witness.malformed")
        (when,) = struct.unpack(">Q", line.signature[:8])
        if not witness.verify(text, when, line.signature[8:]):
            raise AuditError(f"cosignature by witness {line.name} (key "
                             f"{line.key_id.hex()}) does not verify", code="witness.signature")
        found.append(Cosignature(line.name, witness.vkey(), when))
    return found


def check_log_signature(note: str, log_verifier: NoteVerifier) -> Checkpoint:
    """What a witness checks before cosigning: the log's own signature and the format.

    Raises:
        AuditError: ``note.*`` or ``checkpoint.malformed``.
    """
    text, _ = open_note(note, [log_verifier])
    return Checkpoint.from_text(text)
