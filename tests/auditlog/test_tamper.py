"""The tamper suite: each way of altering an audit bundle makes `audit verify` fail, naming why.

One real bundle is built per module (SQLite, the sync's own batch functions without Prefect:
two runs with an amendment, a revocation and a refused entry, then an export), and each case
copies it, breaks exactly one thing, and asserts the cause code and where it points.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import issuers
from interdict.agencies import onboarding
from interdict.auditlog import log
from interdict.auditlog.bundle import BundleInvalid
from interdict.auditlog.export import export
from interdict.auditlog.merkle import leaf_hash, root_of
from interdict.auditlog.note import Checkpoint, NoteSigner, sign_note
from interdict.auditlog.verify import verify_bundle
from interdict.auditlog.witness import WitnessSigner
from interdict.home import Home
from interdict.installation import Installation
from interdict.keys import jws, keyfile
from interdict.keys.jwk import b64u, public_jwk, thumbprint, unb64u
from tests.conftest import BASE_ENTRY, COURT_MEASURES


@dataclass
class Forge:
    """The pristine bundle, and the keys an attacker who owns the operator's machine holds."""

    bundle: Path
    log_signer: NoteSigner
    engine: jws.Signer
    issuer: jws.Signer
    travel: jws.Signer
    checkpoint_sizes: list[int]


def _entry(entry_id: str, **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE_ENTRY)
    document.update(entry_id=entry_id, **changes)
    return document


def _sync_without_prefect(inst: Installation) -> None:
    from interdict.flows.checkpoint import checkpoint_once
    from interdict.flows.dispatch import deliver_once, plan_once
    from interdict.flows.ingest import ingest_once

    home = str(inst.home.root)
    while ingest_once(home).read:
        pass
    while plan_once(home).causes:
        pass
    for agency in inst.agency_ids():
        deliver_once(home, agency)
    checkpoint_once(home)


@pytest.fixture(scope="module")
def forge(tmp_path_factory: pytest.TempPathFactory) -> Forge:
    from interdict.flows.runtime import installation as flow_installation

    root = tmp_path_factory.mktemp("tamper")
    home = Home(root / "home")
    Installation.init(home)
    inst = flow_installation(str(home.root))
    issuers.add(inst, "court-7", name="Court 7", measures=COURT_MEASURES)
    for name in onboarding.BUILTINS:
        onboarding.register_builtin(inst, name)
    inst.public.publish(issuers.sign(inst, "court-7", [
        _entry("court-7/a"), _entry("court-7/b"), _entry("court-7/c", redress=None)]))
    _sync_without_prefect(inst)
    inst.public.publish(issuers.sign(inst, "court-7", [
        _entry("court-7/a", revision=2, op="amend", reason="amended on appeal"),
        _entry("court-7/b", revision=2, op="revoke")]))
    _sync_without_prefect(inst)
    bundle = root / "bundle"
    export(inst, bundle, actor=log.operator())
    travel_key = keyfile.load(inst.home.agencies_dir / "travel" / "receipt.key")
    sizes = sorted(int(p.name) for p in (bundle / "checkpoints").iterdir())
    assert len(sizes) == 3  # two syncs and the export
    return Forge(bundle, inst.log_signer, inst.engine_signer, inst.issuer_signer("court-7"),
                 jws.Signer(travel_key), sizes)


# -- helpers ----------------------------------------------------------------------------------


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, items: list[bytes]) -> None:
    path.write_bytes(b"".join(item + b"\n" for item in items))


def events(bundle: Path) -> list[bytes]:
    return lines(bundle / "events.jsonl")


def seq_of(bundle: Path, action: str, nth: int = 0) -> int:
    found = [i for i, e in enumerate(events(bundle)) if json.loads(e)["action"] == action]
    return found[nth]


def payload(token: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(unb64u(token.split(b".")[1]))
    return document


def resign(signer: jws.Signer, token: bytes, typ: str, **changes: Any) -> bytes:
    return signer.sign_document({**payload(token), **changes}, typ).encode()


def sign_checkpoint(signer: NoteSigner, origin: str, leaves: list[bytes], size: int) -> str:
    return sign_note(Checkpoint(origin, size, root_of(leaves[:size])).to_text(), signer)


def edit_jwks(bundle: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    path = bundle / "jwks.json"
    document = json.loads(path.read_text())
    change(document["keys"])
    path.write_text(json.dumps(document))


def key_of(keys: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(k for k in keys if k["owner"]["kind"] == kind)


def set_byte(line: bytes, marker: bytes) -> bytes:
    """Change one character inside the value after ``marker`` (keeps the JSON valid)."""
    at = line.index(marker) + len(marker) + 3
    return line[:at] + (b"9" if line[at:at + 1] != b"9" else b"8") + line[at + 1:]


# -- the ways to tamper ------------------------------------------------------------------------


def change_event_byte(b: Path, f: Forge) -> None:
    items = events(b)
    k = seq_of(b, "directive.issued", 5)  # issued in the second sync
    items[k] = set_byte(items[k], b'"at":"2026')
    write_lines(b / "events.jsonl", items)


def delete_event(b: Path, f: Forge) -> None:
    items = events(b)
    del items[10]
    write_lines(b / "events.jsonl", items)


def reorder_events(b: Path, f: Forge) -> None:
    items = events(b)
    items[10], items[11] = items[11], items[10]
    write_lines(b / "events.jsonl", items)


def truncate_log(b: Path, f: Forge) -> None:
    write_lines(b / "events.jsonl", events(b)[:-3])


def append_forged_event(b: Path, f: Forge) -> None:
    items = events(b)
    items.append(jws.canonical_json(log.event("entry.accepted") | {
        "at": "2026-11-27T10:00:00Z", "seq": len(items)}))
    write_lines(b / "events.jsonl", items)


def garble_event(b: Path, f: Forge) -> None:
    items = events(b)
    items[7] = b"this is not JSON"
    write_lines(b / "events.jsonl", items)


def cut_last_newline(b: Path, f: Forge) -> None:
    path = b / "events.jsonl"
    path.write_bytes(path.read_bytes()[:-1])


def replace_directive(b: Path, f: Forge) -> None:
    items = lines(b / "directives.jsonl")
    items[0] = resign(f.engine, items[0], jws.TYP_DIRECTIVE, reason="something else entirely")
    write_lines(b / "directives.jsonl", items)


def replace_directive_signature(b: Path, f: Forge) -> None:
    items = lines(b / "directives.jsonl")
    head, body, _ = items[0].split(b".")
    items[0] = b".".join((head, body, items[1].split(b".")[2]))
    write_lines(b / "directives.jsonl", items)


def directive_signed_by_issuer(b: Path, f: Forge) -> None:
    items = lines(b / "directives.jsonl")
    items[0] = f.issuer.sign(payload_bytes(items[0]), jws.TYP_DIRECTIVE).encode()
    write_lines(b / "directives.jsonl", items)


def payload_bytes(token: bytes) -> bytes:
    return unb64u(token.split(b".")[1])


def duplicate_directive(b: Path, f: Forge) -> None:
    items = lines(b / "directives.jsonl")
    write_lines(b / "directives.jsonl", [*items, items[0]])


def garble_directive_line(b: Path, f: Forge) -> None:
    items = lines(b / "directives.jsonl")
    items[2] = b"garbage"
    write_lines(b / "directives.jsonl", items)


def drop_receipts_directive(b: Path, f: Forge) -> None:
    named = payload(lines(b / "receipts.jsonl")[0])["directive_id"]
    kept = [d for d in lines(b / "directives.jsonl") if payload(d)["directive_id"] != named]
    write_lines(b / "directives.jsonl", kept)


def receipt_for_unknown_directive(b: Path, f: Forge) -> None:
    items = lines(b / "receipts.jsonl")
    forged = {**payload(items[0]), "agency": "travel", "directive_id": "d-" + "0" * 32}
    items.append(f.travel.sign_document(forged, jws.TYP_RECEIPT).encode())
    write_lines(b / "receipts.jsonl", items)


def entry_not_logged(b: Path, f: Forge) -> None:
    items = lines(b / "entries.jsonl")
    items.append(f.issuer.sign_document(_entry("court-7/never-published"),
                                        jws.TYP_ENTRY).encode())
    write_lines(b / "entries.jsonl", items)


def entry_digest_mismatch(b: Path, f: Forge) -> None:
    items = lines(b / "entries.jsonl")
    items[0] = resign(f.issuer, items[0], jws.TYP_ENTRY, reason="a different reason")
    write_lines(b / "entries.jsonl", items)


def swap_key_in_jwks(b: Path, f: Forge) -> None:
    stranger = jws.Signer(Ed25519PrivateKey.generate())
    edit_jwks(b, lambda keys: key_of(keys, "engine").update(x=b64u(stranger.public_key)))


def replace_key_in_jwks(b: Path, f: Forge) -> None:
    stranger = jws.Signer(Ed25519PrivateKey.generate())
    edit_jwks(b, lambda keys: key_of(keys, "engine").update(
        **public_jwk(stranger.public_key), kid=thumbprint(stranger.public_key)))


def change_key_owner_kind(b: Path, f: Forge) -> None:
    edit_jwks(b, lambda keys: key_of(keys, "engine").update(
        owner={"kind": "issuer", "id": "court-7"}))


def change_key_owner_id(b: Path, f: Forge) -> None:
    edit_jwks(b, lambda keys: key_of(keys, "issuer").update(
        owner={"kind": "issuer", "id": "court-9"}))


def change_key_validity(b: Path, f: Forge) -> None:
    edit_jwks(b, lambda keys: key_of(keys, "engine").update(valid_until="2026-01-01T00:00:00Z"))


def garble_jwks(b: Path, f: Forge) -> None:
    path = b / "jwks.json"
    path.write_text(path.read_text()[:40])


def roll_checkpoint_back(b: Path, f: Forge) -> None:
    shutil.copy(b / "checkpoints" / str(f.checkpoint_sizes[1]), b / "checkpoint")


def sign_inconsistent_checkpoint(b: Path, f: Forge) -> None:
    """The operator rewrites an old event and signs the rewritten log with the right key."""
    items = events(b)
    k = seq_of(b, "entry.accepted")  # before the first checkpoint
    items[k] = set_byte(items[k], b'"at":"2026')
    write_lines(b / "events.jsonl", items)
    size = f.checkpoint_sizes[-1]
    note = sign_checkpoint(f.log_signer, f.log_signer.name, [leaf_hash(e) for e in items], size)
    (b / "checkpoint").write_text(note)
    (b / "checkpoints" / str(size)).write_text(note)


def sign_wrong_root(b: Path, f: Forge) -> None:
    size = f.checkpoint_sizes[-1]
    text = Checkpoint(f.log_signer.name, size, bytes(32)).to_text()
    (b / "checkpoint").write_text(sign_note(text, f.log_signer))


def older_checkpoint_inconsistent(b: Path, f: Forge) -> None:
    size = f.checkpoint_sizes[0]
    text = Checkpoint(f.log_signer.name, size, bytes(range(32))).to_text()
    (b / "checkpoints" / str(size)).write_text(sign_note(text, f.log_signer))


def checkpoint_by_another_key(b: Path, f: Forge) -> None:
    impostor = NoteSigner.generate(f.log_signer.name)
    text = (b / "checkpoint").read_text().split("\n\n")[0] + "\n"
    (b / "checkpoint").write_text(sign_note(text, impostor))


def checkpoint_text_altered(b: Path, f: Forge) -> None:
    path = b / "checkpoint"
    origin, size, rest = path.read_text().split("\n", 2)
    path.write_text(f"{origin}\n{int(size) - 1}\n{rest}")


def checkpoint_for_another_origin(b: Path, f: Forge) -> None:
    evil = NoteSigner.generate("evil.example/log")
    text = (b / "checkpoint").read_text().split("\n\n")[0] + "\n"
    (b / "checkpoint").write_text(sign_note(text, evil))
    (b / "log.vkey").write_text(evil.vkey() + "\n")


def swap_log_vkey(b: Path, f: Forge) -> None:
    (b / "log.vkey").write_text(NoteSigner.generate(f.log_signer.name).vkey() + "\n")


def checkpoint_file_misnamed(b: Path, f: Forge) -> None:
    first = b / "checkpoints" / str(f.checkpoint_sizes[0])
    first.rename(b / "checkpoints" / str(f.checkpoint_sizes[0] + 1))


def remove_receipts_file(b: Path, f: Forge) -> None:
    (b / "receipts.jsonl").unlink()


def claim_an_entry_erased(b: Path, f: Forge) -> None:
    """Withhold an entry and list it as erased, pointing at its acceptance: the log never
    recorded erasing it."""
    items = lines(b / "entries.jsonl")
    withheld = items.pop(0)
    write_lines(b / "entries.jsonl", items)
    digest = jws.digest(withheld)
    seq = next(i for i, e in enumerate(events(b)) if json.loads(e)["refs"].get("digest") == digest)
    write_lines(b / "erased.jsonl", [jws.canonical_json(
        {"kind": "entry", "digest": digest, "seq": seq})])


Case = tuple[str, Callable[[Path, Forge], None], str, str | None]
CASES: list[Case] = [
    ("change a byte of an event", change_event_byte, "log.root_mismatch", "events.jsonl"),
    ("delete an event", delete_event, "event.seq_mismatch", "events.jsonl"),
    ("reorder two events", reorder_events, "event.seq_mismatch", "events.jsonl"),
    ("truncate the log", truncate_log, "log.truncated", "events.jsonl"),
    ("append a forged event", append_forged_event, "log.uncovered", "events.jsonl"),
    ("garble an event line", garble_event, "event.malformed", "events.jsonl"),
    ("cut the last newline", cut_last_newline, "event.malformed", "events.jsonl"),
    ("replace a directive", replace_directive, "directive.digest_mismatch",
     "directives.jsonl"),
    ("replace a directive's signature", replace_directive_signature, "signature.invalid",
     "directives.jsonl"),
    ("directive signed by an issuer key", directive_signed_by_issuer, "key.wrong_owner",
     "directives.jsonl"),
    ("list a directive twice", duplicate_directive, "document.duplicate", "directives.jsonl"),
    ("malformed directive line", garble_directive_line, "jws.malformed", "directives.jsonl"),
    ("drop a receipt's directive", drop_receipts_directive, "receipt.directive_missing",
     "receipts.jsonl"),
    ("receipt for an unknown directive", receipt_for_unknown_directive,
     "receipt.directive_not_logged", "receipts.jsonl"),
    ("entry not recorded in the log", entry_not_logged, "entry.not_logged", "entries.jsonl"),
    ("entry digest mismatch", entry_digest_mismatch, "entry.digest_mismatch", "entries.jsonl"),
    ("swap a key in jwks.json", swap_key_in_jwks, "jwks.kid_mismatch", "jwks.json"),
    ("replace a key in jwks.json", replace_key_in_jwks, "key.not_logged", "jwks.json"),
    ("change a key's owner kind", change_key_owner_kind, "key.owner_mismatch", "jwks.json"),
    ("change a key's owner", change_key_owner_id, "key.owner_mismatch", "jwks.json"),
    ("change a key's validity", change_key_validity, "key.validity_mismatch", "jwks.json"),
    ("malformed jwks.json", garble_jwks, "jwks.malformed", "jwks.json"),
    ("roll the checkpoint back", roll_checkpoint_back, "checkpoint.rollback", "checkpoint"),
    ("rewrite history and sign it with the right key", sign_inconsistent_checkpoint,
     "checkpoint.inconsistent", "checkpoints/{0}"),
    ("sign a wrong root with the right key", sign_wrong_root, "log.root_mismatch",
     "events.jsonl"),
    ("older checkpoint inconsistent", older_checkpoint_inconsistent, "checkpoint.inconsistent",
     "checkpoints/{0}"),
    ("checkpoint signed by another key", checkpoint_by_another_key, "note.unverified",
     "checkpoint"),
    ("checkpoint text altered", checkpoint_text_altered, "note.signature", "checkpoint"),
    ("checkpoint for another origin", checkpoint_for_another_origin, "checkpoint.origin",
     "checkpoint"),
    ("log.vkey swapped", swap_log_vkey, "note.unverified", "checkpoint"),
    ("checkpoint file misnamed", checkpoint_file_misnamed, "checkpoint.name", None),
    ("a bundle file removed", remove_receipts_file, "bundle.missing_file", "receipts.jsonl"),
    ("claim a document erased that the log never erased", claim_an_entry_erased,
     "erased.not_logged", "erased.jsonl"),
]


@pytest.fixture
def copy_of(forge: Forge, tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "bundle"
    shutil.copytree(forge.bundle, target)
    yield target


def test_the_untampered_bundle_verifies(forge: Forge, copy_of: Path) -> None:
    report = verify_bundle(copy_of, vkey=forge.log_signer.vkey())
    assert report.ok and not report.warnings
    assert report.size == len(events(copy_of)) == forge.checkpoint_sizes[-1]
    assert report.checks["checkpoints consistent with the latest"] == 3
    assert report.checks["entries: signature, signer, log record"] == 4
    assert report.log_key_source.startswith("--vkey")


def test_there_are_at_least_twenty_ways() -> None:
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)
    assert len({c[1] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "tamper", "code", "file"), CASES, ids=[c[0] for c in CASES])
def test_tampering_is_caught_and_named(forge: Forge, copy_of: Path, name: str,
                                       tamper: Callable[[Path, Forge], None], code: str,
                                       file: str | None) -> None:
    tamper(copy_of, forge)
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(copy_of)
    failure = caught.value.report.failure
    assert failure is not None
    assert (failure.code, caught.value.code) == (code, code), failure.message
    if file is not None:
        assert failure.file == file.format(forge.checkpoint_sizes[0])
    assert failure.message


def test_positions_point_at_the_first_bad_event(forge: Forge, copy_of: Path) -> None:
    delete_event(copy_of, forge)
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(copy_of)
    assert (caught.value.report.failure.line, caught.value.report.failure.seq) == (11, 10)
    # the checks done before the failure are still reported
    assert caught.value.report.checks["checkpoint signatures"] == 4


def test_a_changed_event_is_located_between_checkpoints(forge: Forge, copy_of: Path) -> None:
    change_event_byte(copy_of, forge)
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(copy_of)
    failure = caught.value.report.failure
    changed = seq_of(forge.bundle, "directive.issued", 5)
    first, second = forge.checkpoint_sizes[:2]
    assert first <= changed < second
    assert failure.seq == first and f"seq {first}..{second - 1}" in failure.message


def test_a_forged_witness_cosignature_fails(forge: Forge, copy_of: Path) -> None:
    witness = WitnessSigner("travel.example/witness", Ed25519PrivateKey.generate())
    path = copy_of / "checkpoint"
    cosigned = witness.cosign(path.read_text(), timestamp=1_800_000_000)
    head, _, last = cosigned.rstrip("\n").rpartition("\n")
    name, signature = last.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(signature))
    raw[-1] ^= 1
    path.write_text(f"{head}\n{name} {base64.b64encode(bytes(raw)).decode()}\n")
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(copy_of, witnesses=[witness.verifier.vkey()])
    assert caught.value.code == "witness.signature"
    # without that witness's key the stray line is ignored, as signed-note requires
    assert verify_bundle(copy_of).ok


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 8, 13, 16, 17, 31, 64])
def test_the_chunked_scan_equals_the_tree_over_every_leaf(tmp_path: Path, count: int) -> None:
    """Chunks of 4 leaves, so every way a size can fall against chunk bounds is exercised."""
    from interdict.auditlog.bundle import Report
    from interdict.auditlog.merkle import EMPTY_ROOT
    from interdict.auditlog.verify import scan_events

    items = [jws.canonical_json({"n": n, "seq": n}) for n in range(count)]
    write_lines(tmp_path / "events.jsonl", items)
    every = [leaf_hash(item) for item in items]
    scan = scan_events(tmp_path / "events.jsonl", Report("t"), sizes=range(count + 1), chunk=4)
    assert scan.size == count
    assert scan.root == (root_of(every) if every else EMPTY_ROOT)
    assert scan.prefix_roots == {n: root_of(every[:n]) for n in range(count + 1)}
