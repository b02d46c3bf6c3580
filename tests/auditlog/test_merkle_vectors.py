"""The Merkle tree against the transparency-dev/merkle vectors (RFC 6962 / RFC 9162).

Every vector file under ``testdata/inclusion`` and ``testdata/consistency`` runs: ``wantErr``
cases must raise AuditError, the others must verify. Proofs we generate are checked against
the verifier and against the vectors' own proofs, and CompactRange against root_of.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from interdict.auditlog.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from interdict.errors import AuditError

# The leaves behind the vector trees, from the vectors' README.
LEAVES_HEX = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in LEAVES_HEX]
ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def _shared_dir() -> Path | None:
    beside = Path(__file__).resolve().parents[3] / "shared"
    if beside.is_dir():
        return beside
    env = os.environ.get("INTERDICT_SHARED")
    return Path(env) if env and Path(env).is_dir() else None


def _testdata() -> Path | None:
    shared = _shared_dir()
    if shared is None:
        return None
    data = shared / "vectors" / "transparency-dev-merkle" / "testdata"
    return data if data.is_dir() else None


TESTDATA = _testdata()
NO_VECTORS = (
    "transparency-dev merkle vectors not found: expected shared/vectors/"
    "transparency-dev-merkle/testdata beside the repository or under $INTERDICT_SHARED"
)


def _vector_params(kind: str) -> list[Any]:
    if TESTDATA is None:
        return [pytest.param(None, id=f"{kind}-absent", marks=pytest.mark.skip(reason=NO_VECTORS))]
    files = sorted((TESTDATA / kind).rglob("*.json"))
    return [pytest.param(f, id=f.relative_to(TESTDATA).as_posix()) for f in files]


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _proof(vector: dict[str, Any]) -> list[bytes]:
    # The vectors write an empty proof as null or [].
    return [_b64(p) for p in vector["proof"] or []]


def _mth(leaves: Sequence[bytes]) -> bytes:
    """The RFC 9162 section 2.1.1 definition, recursively: the reference for root_of."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


# ---- the vector files ------------------------------------------------------------------------


@pytest.mark.parametrize("path", _vector_params("inclusion"))
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(AuditError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _vector_params("consistency"))
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    args = (v["size1"], v["size2"], _proof(v), _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(AuditError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def _happy_paths(kind: str) -> list[Any]:
    return [p for p in _vector_params(kind) if p.values[0] is None or "happy-path" in p.id]


@pytest.mark.parametrize("path", _happy_paths("inclusion"))
def test_inclusion_vector_proof_is_reproduced(path: Path) -> None:
    v = _load(path)
    size, index = v["treeSize"], v["leafIdx"]
    assert _b64(v["root"]) == root_of(LEAVES[:size])
    assert _b64(v["leafHash"]) == LEAVES[index]
    assert inclusion_proof(LEAVES, index, size) == _proof(v)


@pytest.mark.parametrize("path", _happy_paths("consistency"))
def test_consistency_vector_proof_is_reproduced(path: Path) -> None:
    v = _load(path)
    size1, size2 = v["size1"], v["size2"]
    assert _b64(v["root1"]) == root_of(LEAVES[:size1])
    assert _b64(v["root2"]) == root_of(LEAVES[:size2])
    assert consistency_proof(LEAVES, size1, size2) == _proof(v)


# ---- roots -----------------------------------------------------------------------------------


def test_known_root_of_eight_leaves() -> None:
    assert root_of(LEAVES).hex() == ROOT_8


def test_empty_root_is_sha256_of_nothing() -> None:
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_hash_prefixes() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def _random_leaves(n: int, seed: int = 6962) -> list[bytes]:
    rng = random.Random(seed)
    return [leaf_hash(rng.randbytes(rng.randrange(0, 40))) for _ in range(n)]


def test_root_of_matches_recursive_definition() -> None:
    leaves = _random_leaves(70)
    for n in range(71):
        assert root_of(leaves[:n]) == _mth(leaves[:n]), n


def test_root_of_rejects_wrong_hash_length() -> None:
    with pytest.raises(AuditError) as err:
        root_of([LEAVES[0], b"short"])
    assert err.value.code == "proof.malformed"


# ---- generated proofs ------------------------------------------------------------------------


def test_generated_inclusion_proofs_verify_up_to_8() -> None:
    for size in range(1, 9):
        root = root_of(LEAVES[:size])
        for index in range(size):
            proof = inclusion_proof(LEAVES, index, size)
            verify_inclusion(LEAVES[index], index, size, proof, root)


def test_generated_consistency_proofs_verify_up_to_8() -> None:
    for size2 in range(1, 9):
        root2 = root_of(LEAVES[:size2])
        for size1 in range(1, size2 + 1):
            proof = consistency_proof(LEAVES, size1, size2)
            verify_consistency(size1, size2, proof, root_of(LEAVES[:size1]), root2)


def test_generated_proofs_verify_random_sizes_up_to_70() -> None:
    leaves = _random_leaves(70)
    roots = [root_of(leaves[:n]) for n in range(71)]
    rng = random.Random(9162)
    for _ in range(300):
        size = rng.randrange(1, 71)
        index = rng.randrange(size)
        verify_inclusion(
            leaves[index], index, size, inclusion_proof(leaves, index, size), roots[size]
        )
        size1 = rng.randrange(1, size + 1)
        verify_consistency(
            size1, size, consistency_proof(leaves, size1, size), roots[size1], roots[size]
        )


def test_every_proof_hash_is_load_bearing() -> None:
    # Flipping any bit of any proof hash, or the leaf, must break the proof.
    leaves = _random_leaves(13)
    root = root_of(leaves)
    for index in range(13):
        proof = inclusion_proof(leaves, index, 13)
        for i in range(len(proof)):
            bad = [*proof]
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            with pytest.raises(AuditError) as err:
                verify_inclusion(leaves[index], index, 13, bad, root)
            assert err.value.code == "proof.invalid"
    proof = consistency_proof(leaves, 5, 13)
    for i in range(len(proof)):
        bad = [*proof]
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(AuditError):
            verify_consistency(5, 13, bad, root_of(leaves[:5]), root)


def test_inclusion_rejects_wrong_proof_lengths_and_ranges() -> None:
    root = root_of(LEAVES)
    proof = inclusion_proof(LEAVES, 3, 8)
    cases = [
        (LEAVES[3], 3, 8, [*proof, proof[0]], "proof.malformed"),
        (LEAVES[3], 3, 8, proof[:-1], "proof.malformed"),
        (LEAVES[3], 8, 8, proof, "proof.range"),
        (LEAVES[3], -1, 8, proof, "proof.range"),
        (LEAVES[3], 0, 0, [], "proof.range"),
        (LEAVES[3][:31], 3, 8, proof, "proof.malformed"),
        (LEAVES[2], 3, 8, proof, "proof.invalid"),
        (LEAVES[3], 3, 8, [*proof[:-1], b"\x00" * 33], "proof.malformed"),
    ]
    for leaf, index, size, bad_proof, code in cases:
        with pytest.raises(AuditError) as err:
            verify_inclusion(leaf, index, size, bad_proof, root)
        assert err.value.code == code, (index, size, len(bad_proof))


def test_consistency_edge_cases() -> None:
    r = [root_of(LEAVES[:n]) for n in range(9)]
    verify_consistency(3, 3, [], r[3], r[3])
    cases = [
        (0, 0, [], r[0], r[0], "proof.range"),
        (0, 5, [], r[0], r[5], "proof.range"),
        (5, 3, [], r[5], r[3], "proof.range"),
        (3, 3, [r[3]], r[3], r[3], "proof.malformed"),
        (3, 3, [], r[3], r[4], "proof.invalid"),
        (3, 8, [], r[3], r[8], "proof.malformed"),
        (3, 8, consistency_proof(LEAVES, 3, 8), r[4], r[8], "proof.invalid"),
        (3, 8, consistency_proof(LEAVES, 3, 8), r[3], r[7], "proof.invalid"),
        (3, 8, consistency_proof(LEAVES, 3, 8)[:-1], r[3], r[8], "proof.malformed"),
        (4, 8, consistency_proof(LEAVES, 4, 8), r[4][:20], r[8], "proof.malformed"),
    ]
    for size1, size2, proof, root1, root2, code in cases:
        with pytest.raises(AuditError) as err:
            verify_consistency(size1, size2, proof, root1, root2)
        assert err.value.code == code, (size1, size2)


def test_proof_generation_refuses_impossible_requests() -> None:
    for call in (
        lambda: inclusion_proof(LEAVES, 8, 8),
        lambda: inclusion_proof(LEAVES, 0, 9),
        lambda: consistency_proof(LEAVES, 0, 4),
        lambda: consistency_proof(LEAVES, 5, 4),
        lambda: consistency_proof(LEAVES, 4, 9),
    ):
        with pytest.raises(AuditError) as err:
            call()
        assert err.value.code == "proof.range"
    assert consistency_proof(LEAVES, 4, 4) == []


# ---- compact range ---------------------------------------------------------------------------


def test_compact_range_root_matches_root_of_for_sizes_0_to_70() -> None:
    leaves = _random_leaves(70)
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    for n, h in enumerate(leaves, start=1):
        cr.append(h)
        assert cr.size == n
        assert len(cr.hashes) == n.bit_count()
        assert cr.root() == root_of(leaves[:n]), n


def test_compact_range_round_trips_through_bytes() -> None:
    leaves = _random_leaves(70)
    for n in range(71):
        cr = CompactRange.from_leaves(leaves[:n])
        restored = CompactRange.from_bytes(cr.size, cr.to_bytes())
        assert restored == cr
        assert restored.root() == root_of(leaves[:n])
        if n < 70:
            # A restored range keeps growing into the same tree.
            restored.append(leaves[n])
            assert restored.root() == root_of(leaves[: n + 1])


def test_compact_range_copy_is_independent() -> None:
    cr = CompactRange.from_leaves(LEAVES[:5])
    twin = cr.copy()
    twin.append(LEAVES[5])
    assert cr.size == 5 and twin.size == 6
    assert cr.root() == root_of(LEAVES[:5])
    assert twin.root() == root_of(LEAVES[:6])


def test_compact_range_rejects_bad_state() -> None:
    good = CompactRange.from_leaves(LEAVES[:5]).to_bytes()
    for size, data in ((5, good[:-1]), (5, good[:32]), (4, good), (-1, b"")):
        with pytest.raises(AuditError) as err:
            CompactRange.from_bytes(size, data)
        assert err.value.code == "compact.malformed"
    with pytest.raises(AuditError):
        CompactRange().append(b"\x00" * 31)
