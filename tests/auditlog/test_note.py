"""Signed notes and checkpoints (c2sp.org/signed-note, c2sp.org/tlog-checkpoint)."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from interdict.auditlog.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    add_signature,
    key_id,
    open_note,
    sign_note,
    skey_string,
    vkey_string,
)
from interdict.errors import AuditError

# Known answer from golang.org/x/mod/sumdb/note's tests.
PN_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PN_KEY64 = PN_VKEY.split("+", 2)[2]
PN_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PN_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PN_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpR"
    "Zb6KE6RyyBwJnAM=\n"
)
PN_NOTE = PN_TEXT + "\n" + PN_SIG

# Example from the C2SP signed-note specification.
EX_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
EX_NOTE = (
    "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ON"
    "ncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

ROOT = bytes(range(32))


def _raises(code: str, call: Callable[..., object], *args: object) -> AuditError:
    with pytest.raises(AuditError) as err:
        call(*args)
    assert err.value.code == code, err.value.message
    return err.value


# ---- known answers ---------------------------------------------------------------------------


def test_peter_neumann_note_verifies() -> None:
    text, names = open_note(PN_NOTE, [NoteVerifier.from_vkey(PN_VKEY)])
    assert text == PN_TEXT
    assert names == ["PeterNeumann"]


def test_peter_neumann_signature_is_reproduced() -> None:
    signer = NoteSigner.from_skey(PN_SKEY)
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.vkey() == PN_VKEY
    assert signer.skey() == PN_SKEY
    assert sign_note(PN_TEXT, signer) == PN_NOTE


def test_c2sp_example_note_verifies() -> None:
    assert open_note(EX_NOTE, [NoteVerifier.from_vkey(EX_VKEY)]) == (
        "This is an example message.\n",
        ["example.com/foo"],
    )


def test_key_strings_round_trip() -> None:
    verifier = NoteVerifier.from_vkey(PN_VKEY)
    assert verifier.vkey() == PN_VKEY
    assert vkey_string(verifier.name, verifier.public_key) == PN_VKEY
    assert key_id("PeterNeumann", verifier.public_key) == bytes.fromhex("c74f20a3")
    seed = bytes(range(32))
    signer = NoteSigner.from_skey(skey_string("example.org/log", seed))
    assert NoteVerifier.from_vkey(signer.vkey()).key_id == signer.key_id
    assert NoteSigner("example.org/log", seed).skey() == signer.skey()


# ---- opening notes ---------------------------------------------------------------------------


def test_tampered_text_is_rejected() -> None:
    tampered = PN_NOTE.replace("cryptography", "cryptograpHy")
    _raises("note.signature", open_note, tampered, [NoteVerifier.from_vkey(PN_VKEY)])


def test_tampered_signature_with_known_key_id_is_rejected() -> None:
    raw = bytearray(base64.b64decode(PN_SIG.split()[-1]))
    raw[10] ^= 1  # keep the key ID, break the signature
    note = PN_TEXT + "\n— PeterNeumann " + base64.b64encode(bytes(raw)).decode() + "\n"
    _raises("note.signature", open_note, note, [NoteVerifier.from_vkey(PN_VKEY)])


def test_note_signed_only_by_unknown_keys_is_rejected() -> None:
    stranger = NoteSigner.generate("PeterNeumann")  # same name, different key and key ID
    err = _raises("note.unverified", open_note, PN_NOTE, [stranger.verifier()])
    assert "PeterNeumann+c74f20a3" in err.message
    _raises("note.unverified", open_note, PN_NOTE, [])


def test_unknown_signatures_are_ignored() -> None:
    witness = NoteSigner.generate("witness.example/w1")
    note = add_signature(PN_NOTE, witness)
    assert open_note(note, [NoteVerifier.from_vkey(PN_VKEY)]) == (PN_TEXT, ["PeterNeumann"])
    assert open_note(note, [witness.verifier()]) == (PN_TEXT, ["witness.example/w1"])


def test_cosigned_note_reports_every_verified_signer() -> None:
    log = NoteSigner.generate("log.example/a")
    witness = NoteSigner.generate("witness.example/w1")
    note = add_signature(sign_note("hello\n", log), witness)
    assert note.count("\n— ") == 2
    assert add_signature(note, witness) == note  # signing twice changes nothing
    _, names = open_note(note, [witness.verifier(), log.verifier()])
    assert names == ["log.example/a", "witness.example/w1"]


def test_text_may_contain_blank_lines() -> None:
    signer = NoteSigner.generate("example.org/k")
    text = "first\n\nthird\n\n"
    assert open_note(sign_note(text, signer), [signer.verifier()])[0] == text


def test_duplicate_verified_signature_is_reported_once() -> None:
    note = PN_NOTE + PN_SIG
    assert open_note(note, [NoteVerifier.from_vkey(PN_VKEY)])[1] == ["PeterNeumann"]


@pytest.mark.parametrize(
    "note",
    [
        pytest.param(PN_TEXT + PN_SIG, id="no-blank-line"),
        pytest.param(PN_TEXT + "\n", id="no-signatures"),
        pytest.param(PN_NOTE[:-1], id="no-final-newline"),
        pytest.param(PN_TEXT + "\n- PeterNeumann AAAAAAAA\n", id="hyphen-not-em-dash"),
        pytest.param(PN_TEXT + "\n—PeterNeumann AAAAAAAA\n", id="no-space-after-dash"),
        pytest.param(PN_TEXT + "\n— PeterNeumann\n", id="no-signature"),
        pytest.param(PN_TEXT + "\n— PeterNeumann not*base64\n", id="bad-base64"),
        pytest.param(PN_TEXT + "\n— PeterNeumann AAAAAA==\n", id="signature-too-short"),
        pytest.param(PN_TEXT + "\n— Peter+Neumann AAAAAAAA\n", id="plus-in-name"),
        pytest.param(PN_NOTE + "\n", id="blank-line-after-signatures"),
        pytest.param(PN_NOTE.replace("problem,", "problem,\r"), id="control-character"),
        pytest.param(PN_NOTE.encode()[:-3] + b"\xff\n", id="invalid-utf8"),
        pytest.param(PN_TEXT + "\n" + PN_SIG * 101, id="too-many-signatures"),
    ],
)
def test_malformed_notes_are_rejected(note: str | bytes) -> None:
    _raises("note.malformed", open_note, note, [NoteVerifier.from_vkey(PN_VKEY)])


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("no newline", id="no-final-newline"),
        pytest.param("", id="empty"),
        pytest.param("tab\there\n", id="control-character"),
    ],
)
def test_unsignable_text_is_refused(text: str) -> None:
    _raises("note.text", sign_note, text, NoteSigner.from_skey(PN_SKEY))


# ---- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vkey",
    [
        pytest.param(f"PeterNeumann+c74f20a4+{PN_KEY64}", id="id-mismatch"),
        pytest.param(f"PeterNeuman+c74f20a3+{PN_KEY64}", id="name-mismatch"),
        pytest.param(f"PeterNeumann+c74f20a+{PN_KEY64}", id="short-id"),
        pytest.param(f"PeterNeumann+0xc74f20+{PN_KEY64}", id="0x-id"),
        pytest.param(f"PeterNeumann+c74f20a3+Ahpc{PN_KEY64[4:]}", id="algorithm-byte"),
        pytest.param(f"PeterNeumann+c74f20a3+{PN_KEY64[:-2]}", id="bad-base64"),
        pytest.param(f"PeterNeumann+c74f20a3+{PN_KEY64[:-4]}", id="short-key"),
        pytest.param(f"Peter Neumann+c74f20a3+{PN_KEY64}", id="space-in-name"),
        pytest.param(f"+c74f20a3+{PN_KEY64}", id="empty-name"),
        pytest.param("PeterNeumann+c74f20a3", id="missing-key"),
    ],
)
def test_bad_verifier_keys_are_rejected(vkey: str) -> None:
    _raises("note.key", NoteVerifier.from_vkey, vkey)


@pytest.mark.parametrize(
    "skey",
    [
        pytest.param(PN_SKEY.replace("PRIVATE+KEY", "PUBLIC+KEY"), id="prefix"),
        pytest.param(PN_SKEY.replace("c74f20a3", "c74f20a4"), id="id"),
        pytest.param(PN_VKEY, id="verifier-key"),
        pytest.param(PN_SKEY[:-4], id="truncated"),
    ],
)
def test_bad_signer_keys_are_rejected(skey: str) -> None:
    _raises("note.key", NoteSigner.from_skey, skey)


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\u00a0b", "tab\t"])
def test_bad_key_names_are_rejected(name: str) -> None:
    _raises("note.key", NoteSigner, name, bytes(32))
    _raises("note.key", vkey_string, name, bytes(32))


# ---- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_round_trip() -> None:
    cp = Checkpoint("example.com/log", 20852163, ROOT, ("ext one", "ext two"))
    text = cp.to_text()
    assert text == (
        "example.com/log\n20852163\n" + base64.b64encode(ROOT).decode() + "\next one\next two\n"
    )
    assert Checkpoint.from_text(text) == cp
    empty = Checkpoint("example.com/log", 0, ROOT)
    assert Checkpoint.from_text(empty.to_text()) == empty


def test_signed_checkpoint_opens() -> None:
    signer = NoteSigner.generate("example.com/log")
    cp = Checkpoint("example.com/log", 5, ROOT)
    text, names = open_note(sign_note(cp.to_text(), signer), [signer.verifier()])
    assert Checkpoint.from_text(text) == cp and names == ["example.com/log"]


ROOT64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("text", "defect"),
    [
        pytest.param(f"o\n5\n{ROOT64}", "newline", id="no-final-newline"),
        pytest.param("o\n5\n", "root hash", id="missing-root"),
        pytest.param("o\n", "tree size, root hash", id="missing-size-and-root"),
        pytest.param(f"\n5\n{ROOT64}\n", "origin is empty", id="empty-origin"),
        pytest.param(f"o\n05\n{ROOT64}\n", "leading zeros", id="leading-zero"),
        pytest.param(f"o\n-5\n{ROOT64}\n", "decimal", id="negative"),
        pytest.param(f"o\n+5\n{ROOT64}\n", "decimal", id="plus-sign"),
        pytest.param(f"o\n5 \n{ROOT64}\n", "decimal", id="trailing-space"),
        pytest.param(f"o\n1_0\n{ROOT64}\n", "decimal", id="underscore"),
        pytest.param(f"o\n\u0665\n{ROOT64}\n", "decimal", id="non-ascii-digit"),
        pytest.param(f"o\n\n{ROOT64}\n", "decimal", id="empty-size"),
        pytest.param("o\n5\nnot base64!\n", "base64", id="bad-base64"),
        pytest.param(f"o\n5\n{ROOT64[:-1]}\n", "base64", id="unpadded-base64"),
        pytest.param("o\n5\nAAAA\n", "3 bytes", id="short-root"),
        pytest.param(f"o\n5\n{ROOT64}\n\n", "extension line 1 is empty", id="empty-extension"),
        pytest.param(f"o\r\n5\n{ROOT64}\n", "control", id="carriage-return"),
    ],
)
def test_checkpoint_defects_are_named(text: str, defect: str) -> None:
    err = _raises("checkpoint.malformed", Checkpoint.from_text, text)
    assert defect in err.message


def test_checkpoint_constructor_validates() -> None:
    _raises("checkpoint.malformed", Checkpoint, "", 1, ROOT)
    _raises("checkpoint.malformed", Checkpoint, "o", -1, ROOT)
    _raises("checkpoint.malformed", Checkpoint, "o", 1, ROOT[:31])
    _raises("checkpoint.malformed", Checkpoint, "o", 1, ROOT, ("two\nlines",))
