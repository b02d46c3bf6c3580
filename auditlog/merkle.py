"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

The audit log is a Merkle tree over SHA-256 leaf hashes (RFC 9162 section 2.1.1):

    MTH({})      = SHA-256()
    MTH({d(0)})  = SHA-256(0x00 || d(0))
    MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   k = largest power of 2 < n

Everything here works on *leaf hashes* (32-byte ``leaf_hash(entry)`` values), because that is
what the log stores and what proofs are about. Verifiers raise :class:`AuditError` on every
failure and never return a boolean, so a forgotten ``if`` cannot turn a bad proof into a good one.

Error codes: ``proof.range`` (index or sizes impossible), ``proof.malformed`` (hash of the wrong
length, proof of the wrong length), ``proof.invalid`` (the proof does not lead to the root),
``compact.malformed`` (a persisted compact range does not fit its size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from interdict.errors import AuditError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# RFC 9162 section 2.1.1: distinct prefixes keep a leaf from ever being read as an inner node
# (the second-preimage attack RFC 6962 section 2.1 guards against).
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one log entry (RFC 9162 section 2.1.1)."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: an inner node (RFC 9162 section 2.1.1)."""
    return _sha256(NODE_PREFIX + left + right).digest()


# --------------------------------------------------------------------------------------------
# Building trees
# --------------------------------------------------------------------------------------------


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise AuditError(
                f"{what}[{i}] is {len(h)} bytes, a SHA-256 hash is {HASH_SIZE}",
                code="proof.malformed",
            )


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over ``leaf_hashes`` (RFC 9162 section 2.1.1), built level by level.

    Pairing nodes left to right and carrying an odd last node up unchanged gives exactly the
    "split at the largest power of two" tree of the RFC, without recursion: n - 1 hashes in
    total, each level one list comprehension.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    _check_hashes(leaf_hashes, "leaf hash")
    level = list(leaf_hashes)
    prefix = NODE_PREFIX
    while len(level) > 1:
        carry = level[-1] if len(level) & 1 else None
        level = [
            _sha256(prefix + left + right).digest()
            for left, right in zip(level[0::2], level[1::2], strict=False)
        ]
        if carry is not None:
            level.append(carry)
    return level[0]


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``): the RFC's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The O(log n) state needed to append to a tree and compute its root.

    It holds the roots of the perfect subtrees that make up a tree of ``size`` leaves, largest
    (leftmost) first: one per set bit of ``size``. This is the "compact range" ``[0, size)`` of
    transparency-dev/merkle, enough to persist in one database row instead of every leaf.
    """

    __slots__ = ("_hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0:
            raise AuditError(f"compact range size {size} is negative", code="compact.malformed")
        if len(hashes) != size.bit_count():
            raise AuditError(
                f"a compact range of size {size} holds {size.bit_count()} hashes, "
                f"got {len(hashes)}",
                code="compact.malformed",
            )
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise AuditError(
                    f"compact range hash {i} is {len(h)} bytes, expected {HASH_SIZE}",
                    code="compact.malformed",
                )
        self.size = size
        self._hashes = [bytes(h) for h in hashes]

    @classmethod
    def from_leaves(cls, leaf_hashes: Sequence[bytes]) -> CompactRange:
        """The compact range of a whole tree, for bootstrapping from stored leaves."""
        cr = cls()
        for h in leaf_hashes:
            cr.append(h)
        return cr

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Restore a range persisted with :meth:`to_bytes`; ``size`` is stored beside it."""
        if len(data) % HASH_SIZE:
            raise AuditError(
                f"compact range data is {len(data)} bytes, not a multiple of {HASH_SIZE}",
                code="compact.malformed",
            )
        hashes = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        return cls(size, hashes)

    def to_bytes(self) -> bytes:
        """The subtree roots concatenated, largest first (``32 * popcount(size)`` bytes)."""
        return b"".join(self._hashes)

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect-subtree roots, largest (leftmost) first."""
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        """An independent copy, to try appends without touching the original."""
        return CompactRange(self.size, self._hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash at index ``size``.

        Each trailing 1 bit of the old size is a perfect subtree of the same height as the
        node being carried, so they merge like a binary counter's carries.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise AuditError(
                f"leaf hash is {len(leaf_hash)} bytes, expected {HASH_SIZE}",
                code="proof.malformed",
            )
        h = bytes(leaf_hash)
        n = self.size
        while n & 1:
            h = node_hash(self._hashes.pop(), h)
            n >>= 1
        self._hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        """MTH of the first ``size`` leaves: fold the subtree roots right to left.

        The RFC tree splits at the largest power of two, so the rightmost (smallest) subtrees
        combine first and the largest one is always the left child of the root.
        """
        if not self._hashes:
            return EMPTY_ROOT
        acc = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self.size == other.size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable: not usable as a dict key

    def __repr__(self) -> str:
        return f"CompactRange(size={self.size}, root={self.root().hex()})"


# --------------------------------------------------------------------------------------------
# Generating proofs
# --------------------------------------------------------------------------------------------


def _check_tree(leaves: Sequence[bytes], size: int) -> None:
    if size < 0 or size > len(leaves):
        raise AuditError(
            f"tree size {size} is outside the {len(leaves)} leaves available", code="proof.range"
        )


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 section 2.1.3.1, from the first ``size`` leaf hashes.

    Walks down from the root, noting the sibling subtree's root at each split; the RFC lists
    them leaf-upwards, so the walk's order is reversed at the end.
    """
    _check_tree(leaves, size)
    if not 0 <= index < size:
        raise AuditError(f"leaf index {index} is not in a tree of size {size}", code="proof.range")
    siblings: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            siblings.append(root_of(leaves[lo + k : hi]))
            hi = lo + k
        else:
            siblings.append(root_of(leaves[lo : lo + k]))
            lo += k
    siblings.reverse()
    return siblings


def consistency_proof(leaves: Sequence[bytes], size1: int, size2: int) -> list[bytes]:
    """PROOF(size1, D[size2]) of RFC 9162 section 2.1.4.1 (SUBPROOF with b = true).

    ``size1 == size2`` gives the empty proof; ``size1 == 0`` is refused because nothing can
    be proved about an empty tree (and :func:`verify_consistency` refuses it too).
    """
    _check_tree(leaves, size2)
    if not 0 < size1 <= size2:
        raise AuditError(
            f"no consistency proof from size {size1} to size {size2}: need 0 < size1 <= size2",
            code="proof.range",
        )
    nodes: list[bytes] = []
    lo, hi, m = 0, size2, size1
    whole_old_tree = True  # SUBPROOF's b: still on the path of the old tree's own root
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            nodes.append(root_of(leaves[lo + k : hi]))
            hi = lo + k
        else:
            nodes.append(root_of(leaves[lo : lo + k]))
            lo += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:
        # The old tree is not a single subtree of the new one: the verifier needs this
        # subtree's root as its starting point (SUBPROOF(m, D[m], false) = {MTH(D[m])}).
        nodes.append(root_of(leaves[lo:hi]))
    nodes.reverse()
    return nodes


# --------------------------------------------------------------------------------------------
# Verifying proofs
# --------------------------------------------------------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise AuditError(
            f"{what} is {len(value)} bytes, a SHA-256 hash is {HASH_SIZE}", code="proof.malformed"
        )


def _inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes PATH(index, D[size]) has: the levels below the point where the paths to
    ``index`` and to the last leaf part ("inner"), plus one per left-hand perfect subtree above
    it ("border"), as transparency-dev/merkle computes it."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _shift_until_odd_or_zero(fn: int, sn: int) -> tuple[int, int]:
    while fn and not fn & 1:
        fn >>= 1
        sn >>= 1
    return fn, sn


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof by RFC 9162 section 2.1.3.2; raise :class:`AuditError` if bad.

    Sizes, index and every hash length are checked before any hashing, so each failure says
    what is wrong rather than only "root mismatch".
    """
    if not 0 <= index < size:
        raise AuditError(f"leaf index {index} is not in a tree of size {size}", code="proof.range")
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    _check_hashes(proof, "proof")
    want = _inclusion_proof_length(index, size)
    if len(proof) != want:
        raise AuditError(
            f"inclusion proof for leaf {index} of {size} has {len(proof)} hashes, expected {want}",
            code="proof.malformed",
        )
    # Step 2-3: fn walks the leaf's path, sn the last leaf's; where fn is a right child (or
    # the rightmost node of its level) the proof hash is its left sibling.
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise AuditError(
                "inclusion proof is longer than the tree is high", code="proof.malformed"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # fn is the rightmost node with no right sibling: it moves up unchanged.
                fn, sn = _shift_until_odd_or_zero(fn, sn)
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # Step 4.
    if sn != 0:
        raise AuditError("inclusion proof is too short for the tree", code="proof.malformed")
    if r != root:
        raise AuditError(
            f"inclusion proof for leaf {index} does not lead to the root of the tree "
            f"of size {size}",
            code="proof.invalid",
        )


def _consistency_checks(size1: int, size2: int) -> None:
    """The cases RFC 9162 section 2.1.4.2 leaves to the caller, as transparency-dev rejects them."""
    if size1 < 0 or size2 < 0:
        raise AuditError(f"tree sizes {size1}, {size2} must not be negative", code="proof.range")
    if size1 > size2:
        raise AuditError(
            f"old tree size {size1} is larger than new tree size {size2}", code="proof.range"
        )
    if size1 == 0:
        # Every tree is an extension of the empty tree: a "proof" proves nothing, and
        # accepting one would let a caller skip the real check by claiming size1 = 0.
        raise AuditError(
            "consistency from the empty tree (size1 = 0) proves nothing and is refused",
            code="proof.range",
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that ``root2`` extends ``root1`` by RFC 9162 section 2.1.4.2; raise if not.

    ``size1 == size2`` needs an empty proof and identical roots (compared as given, which is
    what the transparency-dev vectors expect). ``size1 == 0`` is always refused.
    """
    _consistency_checks(size1, size2)
    if size1 == size2:
        if proof:
            raise AuditError(
                f"trees of equal size {size1} need an empty consistency proof, got {len(proof)}",
                code="proof.malformed",
            )
        if root1 != root2:
            raise AuditError(
                f"two different roots for the same tree size {size1}", code="proof.invalid"
            )
        return
    _check_hash(root1, "old root hash")
    _check_hash(root2, "new root hash")
    _check_hashes(proof, "proof")
    # Length check up front, as transparency-dev does: the proof is a suffix of the inclusion
    # proof of leaf size1 - 1, minus the levels inside the largest perfect subtree ending at
    # size1, plus that subtree's root unless it is the whole old tree.
    shift = (size1 & -size1).bit_length() - 1
    seed_in_proof = size1 != 1 << shift  # else the seed is root1 itself
    want = _inclusion_proof_length(size1 - 1, size2) - shift + int(seed_in_proof)
    if len(proof) != want:
        raise AuditError(
            f"consistency proof from {size1} to {size2} has {len(proof)} hashes, expected {want}",
            code="proof.malformed",
        )
    # Step 2: when the old tree is a perfect subtree its root is the starting node.
    path = list(proof) if seed_in_proof else [root1, *proof]
    # Steps 3-4.
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Steps 5-6: fr rebuilds the old root, sr the new one, from the same starting node.
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise AuditError("consistency proof is too long", code="proof.malformed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_until_odd_or_zero(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise AuditError("consistency proof is too short", code="proof.malformed")
    if fr != root1:
        raise AuditError(
            f"consistency proof does not lead to the old root (size {size1})", code="proof.invalid"
        )
    if sr != root2:
        raise AuditError(
            f"consistency proof does not lead to the new root (size {size2})", code="proof.invalid"
        )
