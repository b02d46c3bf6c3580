"""Proofs from the stored log (with tiles), the audit commands, and witness cosignatures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session, col

from interdict.auditlog import log, merkle, proofs, sign_checkpoint
from interdict.auditlog.note import Checkpoint, NoteSigner, NoteVerifier, open_note
from interdict.auditlog.witness import (
    WitnessSigner,
    WitnessVerifier,
    cosigned_by,
    message,
)
from interdict.cli import main
from interdict.errors import AuditError
from interdict.installation import Installation
from interdict.storage import transaction
from interdict.storage.models import AuditEvent, AuditTile

SIZES = [1, 2, 3, 255, 256, 257, 511, 512, 513, 700]


def grow(inst: Installation, to: int, checkpoint: bool = True) -> None:
    """Append events until the log has ``to`` of them (identifiers only, as real ones)."""
    with transaction(inst.db) as session:
        have = proofs.head_size(session)
        log.append(session, [log.event("test.event", n=n) for n in range(have, to)])
        if checkpoint:
            sign_checkpoint(session, inst.log_signer, inst.home.log_origin)


def leaves(inst: Installation) -> list[bytes]:
    with transaction(inst.db) as session:
        return [bytes(x) for x in session.execute(
            sa.select(AuditEvent.leaf).order_by(AuditEvent.seq)).scalars()]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_roots_and_proofs_from_tiles_equal_those_from_every_leaf(
        installation: Installation) -> None:
    grow(installation, 700)
    every = leaves(installation)
    with transaction(installation.db) as session:
        assert proofs.extend_tiles(session) == 2
        assert session.execute(sa.select(sa.func.count()).select_from(AuditTile)).scalar() == 2
        for size in SIZES:
            assert proofs.root_at(session, size) == merkle.root_of(every[:size])
            view = proofs.TreeView(session, size)
            for index in {0, size // 2, size - 1, min(size - 1, 256)}:
                assert merkle.inclusion_proof(view, index, size) == \
                    merkle.inclusion_proof(every, index, size)
            for old in {1, size // 3 or 1, size}:
                assert merkle.consistency_proof(view, old, size) == \
                    merkle.consistency_proof(every, old, size)


def test_tiles_are_extended_a_bounded_batch_of_leaves_at_a_time(
        installation: Installation, monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkpoint after a large sync extends over every event the sync appended: it must
    # read them a batch at a time, not all at once, and the batches must join up exactly.
    grow(installation, 7 * proofs.TILE_SIZE + 5, checkpoint=False)
    every = leaves(installation)
    monkeypatch.setattr(proofs, "_TILES_PER_BATCH", 2)
    reads: list[int] = []
    real = proofs._leaves

    def counted(session: Session, lo: int, hi: int) -> list[bytes]:
        reads.append(hi - lo)
        return real(session, lo, hi)

    monkeypatch.setattr(proofs, "_leaves", counted)
    with transaction(installation.db) as session:
        assert proofs.extend_tiles(session) == 7
        stored = session.execute(sa.select(col(AuditTile.hash))
                                 .order_by(col(AuditTile.idx))).scalars()
        assert [bytes(h) for h in stored] == [
            merkle.root_of(every[i * proofs.TILE_SIZE:(i + 1) * proofs.TILE_SIZE])
            for i in range(7)]
    assert reads == [512, 512, 512, 256]


def test_a_tile_that_disagrees_with_the_leaves_is_caught(installation: Installation) -> None:
    grow(installation, 600)
    with transaction(installation.db) as session:
        session.execute(sa.update(AuditTile).where(AuditTile.idx == 1).values(hash=bytes(32)))
    with transaction(installation.db) as session, pytest.raises(AuditError) as caught:
        proofs.inclusion(session, 3)
    assert caught.value.code == "log.inconsistent"


def test_checkpoint_command_signs_only_when_the_log_grew(
        capsys: pytest.CaptureFixture[str], installation: Installation) -> None:
    home = str(installation.home.root)
    grow(installation, 20, checkpoint=False)
    code, out, _ = run(capsys, "--home", home, "audit", "checkpoint", "--json")
    first = json.loads(out)
    assert code == 0 and first["new"] and first["size"] == 20
    text, _ = open_note(first["note"], [installation.log_signer.verifier()])
    assert Checkpoint.from_text(text).root_hash == base64.b64decode(first["root"])
    code, out, _ = run(capsys, "--home", home, "audit", "checkpoint", "--json")
    assert code == 0 and json.loads(out) == {**first, "new": False}
    code, out, err = run(capsys, "--home", home, "audit", "checkpoint")
    assert code == 0 and out == first["note"] and "has not grown" in err


def test_prove_prints_a_tlog_proof_that_verifies(capsys: pytest.CaptureFixture[str],
                                                 installation: Installation) -> None:
    home = str(installation.home.root)
    grow(installation, 300)
    code, out, _ = run(capsys, "--home", home, "audit", "prove", "257")
    assert code == 0 and out.startswith("c2sp.org/tlog-proof@v1\nextra ")
    parsed = proofs.parse_tlog_proof(out)
    text, names = open_note(parsed.checkpoint, [installation.log_signer.verifier()])
    checkpoint = Checkpoint.from_text(text)
    assert names == [installation.home.log_origin] and checkpoint.size == 300
    assert parsed.extra is not None and json.loads(parsed.extra)["seq"] == 257
    merkle.verify_inclusion(merkle.leaf_hash(parsed.extra), parsed.index, checkpoint.size,
                            parsed.proof, checkpoint.root_hash)
    # a changed event no longer verifies against the same proof
    with pytest.raises(AuditError):
        merkle.verify_inclusion(merkle.leaf_hash(parsed.extra + b" "), parsed.index,
                                checkpoint.size, parsed.proof, checkpoint.root_hash)


def test_prove_at_another_size_and_its_refusals(capsys: pytest.CaptureFixture[str],
                                                installation: Installation) -> None:
    home = str(installation.home.root)
    grow(installation, 40)
    grow(installation, 50, checkpoint=False)
    code, out, _ = run(capsys, "--home", home, "audit", "prove", "7", "--size", "45", "--json")
    proof = json.loads(out)
    assert code == 0 and proof["checkpoint"] is None and proof["size"] == 45
    assert base64.b64decode(proof["root"]) == merkle.root_of(leaves(installation)[:45])
    merkle.verify_inclusion(merkle.leaf_hash(proof["event"].encode()), 7, 45,
                            [base64.b64decode(h) for h in proof["proof"]],
                            base64.b64decode(proof["root"]))
    code, _, err = run(capsys, "--home", home, "audit", "prove", "7", "--size", "45")
    assert code == 1 and err.startswith("error[proof.no_checkpoint]")
    code, _, err = run(capsys, "--home", home, "audit", "prove", "45")
    assert code == 1 and err.startswith("error[proof.not_checkpointed]")
    code, _, err = run(capsys, "--home", home, "audit", "prove", "60", "--size", "70")
    assert code == 1 and err.startswith("error[proof.range]")


def test_consistency_prints_a_witness_request_body_that_verifies(
        capsys: pytest.CaptureFixture[str], installation: Installation) -> None:
    home = str(installation.home.root)
    grow(installation, 30)
    code, old_note, _ = run(capsys, "--home", home, "audit", "checkpoint")
    grow(installation, 333)
    code, out, _ = run(capsys, "--home", home, "audit", "consistency", "30", "333")
    assert code == 0 and out.startswith("old 30\n")
    parsed = proofs.parse_consistency(out)
    verifier = installation.log_signer.verifier()
    old = Checkpoint.from_text(open_note(old_note, [verifier])[0])
    new = Checkpoint.from_text(open_note(parsed.checkpoint, [verifier])[0])
    merkle.verify_consistency(parsed.old, new.size, parsed.proof, old.root_hash, new.root_hash)
    code, out, _ = run(capsys, "--home", home, "audit", "consistency", "30", "333", "--json")
    document = json.loads(out)
    assert document["old_checkpoint"] == old_note and document["new_checkpoint"] == \
        parsed.checkpoint
    code, _, err = run(capsys, "--home", home, "audit", "consistency", "0", "333")
    assert code == 1 and err.startswith("error[proof.range]")


def test_cosign_and_verify_report_which_witnesses_cosigned(
        capsys: pytest.CaptureFixture[str], installation: Installation, tmp_path: Path) -> None:
    home = str(installation.home.root)
    grow(installation, 32)
    bundle = tmp_path / "bundle"
    assert run(capsys, "--home", home, "audit", "export", str(bundle))[0] == 0
    # witness 1: an interdict key file; witness 2: a signed-note signer key
    key_file = tmp_path / "w1.key"
    code, out, _ = run(capsys, "audit", "witness-key", "--key", str(key_file), "--name",
                       "travel.example/witness", "--new", "--json")
    w1 = json.loads(out)["vkey"]
    skey_file = tmp_path / "w2.skey"
    skey_file.write_text(NoteSigner.generate("loans.example/witness").skey() + "\n")
    code, out, _ = run(capsys, "audit", "witness-key", "--key", str(skey_file))
    w2 = out.strip()
    w3 = WitnessSigner("absent.example", Ed25519PrivateKey.generate()).verifier.vkey()
    checkpoint = bundle / "checkpoint"
    code, _, err = run(capsys, "audit", "cosign", "--key", str(key_file), "--name",
                       "travel.example/witness", str(checkpoint), "-o", str(checkpoint))
    assert code == 0 and w1 in err
    code, out, _ = run(capsys, "audit", "cosign", "--key", str(skey_file), str(checkpoint))
    assert code == 0
    checkpoint.write_text(out)
    code, out, _ = run(capsys, "audit", "verify", str(bundle), "--witness", w1, "--witness", w2,
                       "--witness", w3, "--vkey", installation.log_signer.vkey(), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    cosigned = {w["name"]: (w["cosigned"], w["covers_latest"]) for w in report["witnesses"]}
    assert cosigned == {"travel.example/witness": (True, True),
                        "loans.example/witness": (True, True), "absent.example": (False, False)}
    assert report["checks"]["cosignatures verified"] == 2
    code, out, _ = run(capsys, "audit", "verify", str(bundle), "--witness", w1)
    assert code == 0 and "travel.example/witness: cosigned sizes" in out


def test_cosign_refuses_a_checkpoint_the_log_did_not_sign(
        capsys: pytest.CaptureFixture[str], installation: Installation, tmp_path: Path) -> None:
    grow(installation, 25)
    with transaction(installation.db) as session:
        note = proofs.inclusion(session, 0).checkpoint
    assert note is not None
    forged = tmp_path / "checkpoint"
    forged.write_text(note.replace("\n25\n", "\n26\n"))
    skey = tmp_path / "w.skey"
    skey.write_text(NoteSigner.generate("w.example").skey())
    code, out, err = run(capsys, "audit", "cosign", "--key", str(skey), "--log-vkey",
                         installation.log_signer.vkey(), str(forged))
    assert code == 1 and out == "" and err.startswith("error[note.signature]")


def test_verify_cli_exit_status_and_failure_line(capsys: pytest.CaptureFixture[str],
                                                 installation: Installation,
                                                 tmp_path: Path) -> None:
    grow(installation, 29)  # after the ten events of setting up
    bundle = tmp_path / "b"
    code, out, _ = run(capsys, "--home", str(installation.home.root), "audit", "export",
                       str(bundle), "--json")
    assert code == 0 and json.loads(out)["size"] == 30  # and the export's own event
    code, out, _ = run(capsys, "audit", "verify", str(bundle))
    assert code == 0 and "OK" in out and "log.vkey from the bundle" in out
    events = (bundle / "events.jsonl").read_bytes().split(b"\n")
    del events[4]
    (bundle / "events.jsonl").write_bytes(b"\n".join(events))
    code, out, err = run(capsys, "audit", "verify", str(bundle), "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert report["failure"] == {"code": "event.seq_mismatch", "file": "events.jsonl",
                                 "line": 5, "seq": 4, "message": report["failure"]["message"]}
    assert err.startswith("error[event.seq_mismatch]: events.jsonl line 5 (seq 4):")
    code, _, err = run(capsys, "audit", "verify", str(tmp_path / "nothing"))
    assert code == 1 and err.startswith("error[verify.no_bundle]")
    code, _, err = run(capsys, "audit", "verify", str(bundle), "--vkey", "not-a-key")
    assert code == 1 and err.startswith("error[verify.vkey]")


# -- cosignature/v1 against the C2SP example ----------------------------------------------------

SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_LINE = ("jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
             "qhf5nNo0xUe+mbIUBkBIfZ+qnA==")


def test_the_signed_message_and_line_layout_follow_the_spec() -> None:
    assert message(SPEC_TEXT, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
    raw = base64.b64decode(SPEC_LINE)  # key ID, then the timestamp the spec's message shows
    assert len(raw) == 4 + 8 + 64 and int.from_bytes(raw[4:12], "big") == 1679315147


def test_witness_keys_round_trip_and_refuse_note_keys() -> None:
    signer = WitnessSigner("w.example/1", Ed25519PrivateKey.generate())
    vkey = signer.verifier.vkey()
    assert WitnessVerifier.from_vkey(vkey).public_key == signer.verifier.public_key
    note_vkey = NoteVerifier("w.example/1", signer.verifier.public_key).vkey()
    with pytest.raises(AuditError) as caught:
        WitnessVerifier.from_vkey(note_vkey)
    assert caught.value.code == "witness.key"
    log_signer = NoteSigner.generate("log.example")
    from interdict.auditlog.note import sign_note

    note = sign_note(SPEC_TEXT.replace("example.com/behind-the-sofa", "log.example"),
                     log_signer)
    cosigned = signer.cosign(note, timestamp=1679315147)
    assert signer.cosign(cosigned) == cosigned  # once per witness key
    assert open_note(cosigned, [log_signer.verifier()])[1] == ["log.example"]
    found = cosigned_by(cosigned, [signer.verifier])
    assert [(c.name, c.timestamp) for c in found] == [("w.example/1", 1679315147)]
