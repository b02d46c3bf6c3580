"""Roots and proofs for any size of the stored log, and their C2SP text forms.

Cost. ``audit_event.leaf`` holds every leaf hash, so any root or proof *could* be computed from
the leaves, but that is O(n): about 2 s at a million events here. So the roots of the perfect
subtrees over each aligned run of 256 leaves ("tiles", the tlog-tiles height) are kept in
``audit_tile``. They are derived, immutable once their 256 leaves exist (the log only grows),
and filled at each checkpoint (:func:`extend_tiles`), so appends stay as they were. A root or
proof then reads n/256 tile hashes plus fewer than 256 leaves per level it touches: a few
milliseconds at a million events.

The proof walks themselves are :func:`interdict.auditlog.merkle.inclusion_proof` and
``consistency_proof``, unchanged: they see the stored log through :class:`TreeView`, whose
slices are the one-element list ``[MTH(range)]`` (and ``root_of`` of one hash is that hash).

Text forms (https://c2sp.org/tlog-proof and the ``add-checkpoint`` body of
https://c2sp.org/tlog-witness)::

    c2sp.org/tlog-proof@v1          old 53
    extra <base64 event bytes>      <base64 hash>
    index 12                        ...
    <base64 hash>                   (blank line)
    ...                             <signed checkpoint of the new size>
    (blank line)
    <signed checkpoint>
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from interdict.auditlog import merkle
from interdict.auditlog.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash, root_of
from interdict.errors import AuditError, UsageError
from interdict.storage.models import AuditEvent, AuditHead, AuditTile, Checkpoint

__all__ = [
    "TILE_SIZE",
    "TLOG_PROOF_HEADER",
    "Consistency",
    "Inclusion",
    "TreeView",
    "consistency",
    "extend_tiles",
    "inclusion",
    "parse_consistency",
    "parse_tlog_proof",
    "root_at",
]

TILE_HEIGHT = 8  # as in c2sp.org/tlog-tiles
TILE_SIZE = 1 << TILE_HEIGHT
# Leaves read at a time while extending: 64 tiles, 16,384 leaves. The first checkpoint after a
# large sync extends over every event it appended, and a batch's leaves are all in memory at
# once (1,024 tiles, 262,144 leaves, held about 57 MB at the peak: docs/performance.md, Memory).
_TILES_PER_BATCH = 64
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def head_size(session: Session) -> int:
    head = session.get(AuditHead, 1)
    return head.size if head is not None else 0


def _leaves(session: Session, lo: int, hi: int) -> list[bytes]:
    rows = session.execute(sa.select(col(AuditEvent.leaf)).where(col(AuditEvent.seq) >= lo,
                                                                 col(AuditEvent.seq) < hi)
                           .order_by(col(AuditEvent.seq))).scalars().all()
    if len(rows) != hi - lo:
        raise AuditError(f"audit_event holds {len(rows)} of the leaves {lo}..{hi - 1}: the "
                         "stored log has a gap", code="log.gap")
    return [bytes(r) for r in rows]


def extend_tiles(session: Session, size: int | None = None) -> int:
    """Store the tiles completed since the last call (within the first ``size`` leaves, default
    the whole log); return how many tiles are stored. Safe to run concurrently: a tile another
    transaction stored first is left as it is."""
    size = head_size(session) if size is None else size
    last = session.execute(sa.select(sa.func.max(col(AuditTile.idx)))).scalar_one_or_none()
    have = 0 if last is None else last + 1
    want = size // TILE_SIZE
    for start in range(have, want, _TILES_PER_BATCH):
        end = min(want, start + _TILES_PER_BATCH)
        leaves = _leaves(session, start * TILE_SIZE, end * TILE_SIZE)
        rows = [{"idx": start + i, "hash": root_of(leaves[i * TILE_SIZE:(i + 1) * TILE_SIZE])}
                for i in range(end - start)]
        try:
            with session.begin_nested():
                session.execute(sa.insert(AuditTile), rows)
        except IntegrityError:
            return want  # another writer stored these tiles meanwhile
    return max(have, want)


class TreeView(Sequence[bytes]):
    """The first ``size`` leaves of the stored log, as merkle's proof builders see them.

    Indexing gives a leaf hash; slicing gives ``[MTH(leaves[a:b])]``, computed from the stored
    tiles where the range is tile-aligned and from leaves elsewhere.
    """

    def __init__(self, session: Session, size: int) -> None:
        available = head_size(session)
        if not 0 <= size <= available:
            raise AuditError(f"the log has {available} events; no tree of size {size}",
                             code="proof.range")
        self._session = session
        self._size = size
        self._tiles: list[bytes] = [bytes(h) for h in session.execute(
            sa.select(col(AuditTile.hash)).where(col(AuditTile.idx) < size // TILE_SIZE)
            .order_by(col(AuditTile.idx))).scalars()]

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, item: int) -> bytes: ...

    @overload
    def __getitem__(self, item: slice) -> list[bytes]: ...

    def __getitem__(self, item: int | slice) -> bytes | list[bytes]:
        if isinstance(item, slice):
            start, stop, step = item.indices(self._size)
            if step != 1:
                raise ValueError("a tree view slices with step 1 only")
            return [self.range_root(start, stop)] if stop > start else []
        if not 0 <= item < self._size:
            raise IndexError(item)
        return _leaves(self._session, item, item + 1)[0]

    def root(self) -> bytes:
        return self.range_root(0, self._size)

    def range_root(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]): fold the perfect subtrees of the range (one per set bit of its
        length, largest first) right to left, as the RFC's split at the largest power of two
        does."""
        if hi <= lo:
            return EMPTY_ROOT
        parts: list[bytes] = []
        offset, remaining = lo, hi - lo
        for bit in reversed(range(remaining.bit_length())):
            width = 1 << bit
            if remaining & width:
                parts.append(self._perfect(offset, width))
                offset += width
        acc = parts[-1]
        for h in reversed(parts[:-1]):
            acc = node_hash(h, acc)
        return acc

    def _perfect(self, offset: int, width: int) -> bytes:
        first, count = divmod(offset, TILE_SIZE)
        if (width >= TILE_SIZE and count == 0 and width % TILE_SIZE == 0
                and (offset + width) // TILE_SIZE <= len(self._tiles)):
            return root_of(self._tiles[first:first + width // TILE_SIZE])
        return root_of(_leaves(self._session, offset, offset + width))


def root_at(session: Session, size: int) -> bytes:
    """The root of the log's first ``size`` leaves."""
    extend_tiles(session)
    return TreeView(session, size).root()


# --------------------------------------------------------------------------------------------
# Proofs of the stored log
# --------------------------------------------------------------------------------------------


def _signed_at(session: Session, size: int) -> Checkpoint | None:
    return session.get(Checkpoint, size)


def _latest_size(session: Session) -> int | None:
    return session.execute(sa.select(sa.func.max(Checkpoint.size))).scalar_one_or_none()


def _check_against_checkpoint(checkpoint: Checkpoint | None, root: bytes, size: int) -> None:
    # The proof is about to be handed to someone who will check it against the signed root:
    # refuse to print one the stored leaves cannot back.
    if checkpoint is not None and bytes(checkpoint.root) != root:
        raise AuditError(f"the stored leaves hash to a root other than the signed checkpoint of "
                         f"size {size}: the database was altered", code="log.inconsistent")


@dataclass(frozen=True)
class Inclusion:
    """An inclusion proof of event ``index`` in the tree of ``size`` leaves."""

    index: int
    size: int
    root: bytes
    event: bytes  # the leaf's exact bytes
    proof: list[bytes]
    checkpoint: str | None  # the signed note of this size, if one was signed

    def to_text(self) -> str:
        """The c2sp.org/tlog-proof form, with the event bytes as its ``extra`` data."""
        if self.checkpoint is None:
            raise UsageError(f"no checkpoint was signed at size {self.size}, and the tlog-proof "
                             "form needs one: use --size with a checkpoint's size, or --json",
                             code="proof.no_checkpoint")
        lines = [TLOG_PROOF_HEADER, f"extra {_b64(self.event)}", f"index {self.index}",
                 *(_b64(h) for h in self.proof)]
        return "\n".join(lines) + "\n\n" + self.checkpoint

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "size": self.size, "root": _b64(self.root),
                "leaf_hash": _b64(leaf_hash(self.event)),
                "event": self.event.decode("utf-8", "replace"),
                "proof": [_b64(h) for h in self.proof], "checkpoint": self.checkpoint}


@dataclass(frozen=True)
class Consistency:
    """A consistency proof from the tree of ``old`` leaves to the tree of ``new`` leaves."""

    old: int
    new: int
    old_root: bytes
    new_root: bytes
    proof: list[bytes]
    old_checkpoint: str | None
    new_checkpoint: str | None

    def to_text(self) -> str:
        """The body of a c2sp.org/tlog-witness ``add-checkpoint`` request: what a witness
        needs to cosign the new checkpoint."""
        if self.new_checkpoint is None:
            raise UsageError(f"no checkpoint was signed at size {self.new}, and the text form "
                             "ends with it: use a checkpoint's size as NEW, or --json",
                             code="proof.no_checkpoint")
        lines = [f"old {self.old}", *(_b64(h) for h in self.proof)]
        return "\n".join(lines) + "\n\n" + self.new_checkpoint

    def to_json(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "old_root": _b64(self.old_root),
                "new_root": _b64(self.new_root), "proof": [_b64(h) for h in self.proof],
                "old_checkpoint": self.old_checkpoint, "new_checkpoint": self.new_checkpoint}


def inclusion(session: Session, index: int, size: int | None = None) -> Inclusion:
    """Prove event ``index`` is in the tree of ``size`` leaves (default: the latest checkpoint).

    Raises:
        AuditError: ``proof.range`` (index or size impossible), ``proof.not_checkpointed``
            (no size given and no checkpoint covers the event yet), ``log.inconsistent``.
    """
    if size is None:
        latest = _latest_size(session)
        if latest is None or index >= latest:
            raise AuditError(f"event {index} is not covered by a checkpoint yet (latest size "
                             f"{latest or 0}): run `interdict audit checkpoint`, or give --size",
                             code="proof.not_checkpointed")
        size = latest
    if not 0 <= index < size:
        raise AuditError(f"event {index} is not in a tree of size {size}", code="proof.range")
    extend_tiles(session)
    view = TreeView(session, size)
    root = view.root()
    checkpoint = _signed_at(session, size)
    _check_against_checkpoint(checkpoint, root, size)
    proof = merkle.inclusion_proof(view, index, size)
    event = bytes(session.execute(sa.select(col(AuditEvent.event))
                                  .where(col(AuditEvent.seq) == index)).scalar_one())
    merkle.verify_inclusion(leaf_hash(event), index, size, proof, root)
    return Inclusion(index, size, root, event, proof, checkpoint.note if checkpoint else None)


def consistency(session: Session, old: int, new: int) -> Consistency:
    """Prove the tree of ``old`` leaves is a prefix of the tree of ``new`` leaves.

    Raises:
        AuditError: ``proof.range`` (need 0 < old <= new <= the log's size),
            ``log.inconsistent``.
    """
    if not 0 < old <= new:
        raise AuditError(f"no consistency proof from size {old} to size {new}: need "
                         "0 < OLD <= NEW", code="proof.range")
    extend_tiles(session)
    view = TreeView(session, new)
    old_root, new_root = view.range_root(0, old), view.root()
    old_cp, new_cp = _signed_at(session, old), _signed_at(session, new)
    _check_against_checkpoint(old_cp, old_root, old)
    _check_against_checkpoint(new_cp, new_root, new)
    proof = merkle.consistency_proof(view, old, new)
    merkle.verify_consistency(old, new, proof, old_root, new_root)
    return Consistency(old, new, old_root, new_root, proof,
                       old_cp.note if old_cp else None, new_cp.note if new_cp else None)


# --------------------------------------------------------------------------------------------
# Reading the text forms back
# --------------------------------------------------------------------------------------------


def _hash_line(line: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(line.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise AuditError(f"{what} {line!r} is not base64", code="proof.malformed") from None
    if len(raw) != HASH_SIZE or _b64(raw) != line:
        raise AuditError(f"{what} {line!r} is not a canonical base64 SHA-256 hash",
                         code="proof.malformed")
    return raw


def _decimal(value: str, what: str) -> int:
    if not value.isdigit() or (len(value) > 1 and value[0] == "0") or not value.isascii():
        raise AuditError(f"{what} {value!r} is not a decimal without leading zeros",
                         code="proof.malformed")
    return int(value)


def _split_body(text: str) -> tuple[list[str], str]:
    head, sep, note = text.partition("\n\n")
    if not sep or not note:
        raise AuditError("proof has no blank line followed by a checkpoint",
                         code="proof.malformed")
    return head.split("\n"), note


@dataclass(frozen=True)
class ParsedInclusion:
    index: int
    proof: list[bytes]
    checkpoint: str
    extra: bytes | None


def parse_tlog_proof(text: str) -> ParsedInclusion:
    """Read a c2sp.org/tlog-proof. The checkpoint's signature is NOT checked here: open it
    with :func:`interdict.auditlog.note.open_note` and the log's verifier key."""
    lines, note = _split_body(text)
    if lines[0] != TLOG_PROOF_HEADER:
        raise AuditError(f"first line is {lines[0]!r}, not {TLOG_PROOF_HEADER!r}",
                         code="proof.malformed")
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        try:
            extra = base64.b64decode(rest.pop(0)[6:].encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise AuditError("extra data is not base64", code="proof.malformed") from None
    if not rest or not rest[0].startswith("index "):
        raise AuditError("no 'index N' line", code="proof.malformed")
    index = _decimal(rest[0][6:], "index")
    proof = [_hash_line(line, f"proof line {i + 1}") for i, line in enumerate(rest[1:])]
    return ParsedInclusion(index, proof, note, extra)


@dataclass(frozen=True)
class ParsedConsistency:
    old: int
    proof: list[bytes]
    checkpoint: str


def parse_consistency(text: str) -> ParsedConsistency:
    """Read an ``old N`` / hashes / checkpoint body (c2sp.org/tlog-witness add-checkpoint)."""
    lines, note = _split_body(text)
    if not lines[0].startswith("old "):
        raise AuditError(f"first line is {lines[0]!r}, not 'old N'", code="proof.malformed")
    old = _decimal(lines[0][4:], "old size")
    proof = [_hash_line(line, f"proof line {i + 1}") for i, line in enumerate(lines[1:])]
    return ParsedConsistency(old, proof, note)
