"""Export after a real sync (Prefect, SQLite and PostgreSQL), then verify the bundle offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interdict import flows, issuers
from interdict.auditlog import log
from interdict.auditlog.bundle import BundleInvalid
from interdict.auditlog.export import export
from interdict.auditlog.merkle import leaf_hash
from interdict.auditlog.note import Checkpoint, open_note
from interdict.auditlog.verify import verify_bundle
from interdict.cli import main
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.keys import jws
from interdict.keys.jwk import unb64u
from interdict.storage import transaction
from interdict.storage.models import (
    AuditEvent,
    Directive,
    EntryRevision,
    Receipt,
    TrustedKey,
)
from interdict.storage.models import Checkpoint as CheckpointRow

pytestmark = pytest.mark.usefixtures("prefect_api")
Make = Callable[..., dict[str, Any]]
FILES = {"events.jsonl", "checkpoint", "checkpoints", "log.vkey", "jwks.json", "entries.jsonl",
         "directives.jsonl", "receipts.jsonl"}


def synced(inst: Installation, make: Make, *documents: dict[str, Any]) -> None:
    inst.public.publish(issuers.sign(inst, "court-7", list(documents)))
    flows.sync(str(inst.home.root))


def rows(inst: Installation, *columns: Any, order: Any = None) -> list[Any]:
    with transaction(inst.db) as session:
        query = sa.select(*columns)
        return list(session.execute(query.order_by(order) if order is not None else query))


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def test_a_synced_installation_exports_a_bundle_that_verifies(
        installation: Installation, make_entry: Make, tmp_path: Path) -> None:
    synced(installation, make_entry, make_entry(entry_id="court-7/a"),
           make_entry(entry_id="court-7/b"), make_entry(entry_id="court-7/bad", redress=None))
    synced(installation, make_entry,
           make_entry(entry_id="court-7/a", revision=2, op="amend", reason="on appeal"),
           make_entry(entry_id="court-7/b", revision=2, op="revoke"))
    bundle = tmp_path / "bundle"
    summary = export(installation, bundle, actor=log.operator())
    assert {p.name for p in bundle.iterdir()} == FILES | {"erased.jsonl"}
    assert (bundle / "erased.jsonl").read_bytes() == b""  # nothing erased yet

    # events.jsonl: line i is exactly leaf i's bytes, and the last one records the export
    stored = rows(installation, AuditEvent.event, AuditEvent.leaf, order=AuditEvent.seq)
    exported = lines(bundle / "events.jsonl")
    assert exported == [bytes(e) for e, _ in stored]
    assert [leaf_hash(e) for e in exported] == [bytes(leaf) for _, leaf in stored]
    last = json.loads(exported[-1])
    counts = {"entries": 4, "directives": len(rows(installation, Directive.id)),
              "receipts": len(rows(installation, Receipt.directive_id))}
    assert last["action"] == "audit.exported" and last["actor"].startswith("operator:")
    assert last["refs"] == counts  # counts only: no personal data in the log

    # checkpoints: the latest covers every event; the history is every signed checkpoint
    verifier = installation.log_signer.verifier()
    latest = Checkpoint.from_text(open_note((bundle / "checkpoint").read_text(), [verifier])[0])
    assert latest.size == len(exported) == summary.size
    history = {int(p.name): p.read_text() for p in (bundle / "checkpoints").iterdir()}
    assert history == dict(rows(installation, CheckpointRow.size, CheckpointRow.note))
    assert len(history) == 3 and latest.size in history
    assert (bundle / "log.vkey").read_text() == installation.log_signer.vkey() + "\n"

    # documents, one JWS per line, as stored
    assert set(lines(bundle / "entries.jsonl")) == {
        t.encode() for (t,) in rows(installation, EntryRevision.jws)}
    assert set(lines(bundle / "directives.jsonl")) == {
        t.encode() for (t,) in rows(installation, Directive.jws)}
    assert set(lines(bundle / "receipts.jsonl")) == {
        t.encode() for (t,) in rows(installation, Receipt.jws)}

    # jwks.json: every key that signed something, and the log's, with owner and validity
    keys = {k["kid"]: k for k in json.loads((bundle / "jwks.json").read_text())["keys"]}
    signers = {jws.parse(t, typ).kid for path, typ in (
        ("entries.jsonl", jws.TYP_ENTRY), ("directives.jsonl", jws.TYP_DIRECTIVE),
        ("receipts.jsonl", jws.TYP_RECEIPT)) for t in lines(bundle / path)}
    trusted = {r.kid: r for (r,) in rows(installation, TrustedKey)}
    log_kids = {kid for kid, r in trusted.items() if r.owner_kind == "log"}
    assert set(keys) == signers | log_kids
    for kid, key in keys.items():
        assert key["owner"] == {"kind": trusted[kid].owner_kind, "id": trusted[kid].owner_id}
        assert unb64u(key["x"]) == unb64u(trusted[kid].public_key)
        assert key["valid_from"] and key["status"] == "active"
    assert {k["owner"]["id"] for k in keys.values() if k["owner"]["kind"] == "agency"} == {
        "travel", "loans"}

    report = verify_bundle(bundle, vkey=installation.log_signer.vkey())
    assert report.ok and report.size == summary.size
    assert report.checks["events: leaf hashed"] == summary.size
    assert report.checks["receipts: signature, signer, log record, issued directive"] == \
        counts["receipts"]
    assert report.log_key_source.startswith("--vkey")


def test_export_refuses_a_folder_in_use_and_logs_nothing(
        installation: Installation, make_entry: Make, tmp_path: Path) -> None:
    synced(installation, make_entry, make_entry(entry_id="court-7/a"))
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    size = len(rows(installation, AuditEvent.seq))
    with pytest.raises(UsageError) as caught:
        export(installation, used, actor=log.operator())
    assert caught.value.code == "export.exists"
    assert [p.name for p in used.iterdir()] == ["notes.txt"]
    assert len(rows(installation, AuditEvent.seq)) == size
    empty = tmp_path / "empty"
    empty.mkdir()
    export(installation, empty, actor=log.operator())
    assert verify_bundle(empty).ok
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_a_later_bundle_is_consistent_with_an_earlier_checkpoint_and_a_fork_is_not(
        installation: Installation, make_entry: Make, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    home = str(installation.home.root)
    synced(installation, make_entry, make_entry(entry_id="court-7/a"))
    assert main(["--home", home, "audit", "export", str(tmp_path / "first")]) == 0
    kept = tmp_path / "kept-checkpoint"
    kept.write_bytes((tmp_path / "first" / "checkpoint").read_bytes())
    synced(installation, make_entry, make_entry(entry_id="court-7/b"))
    assert main(["--home", home, "audit", "export", str(tmp_path / "second")]) == 0
    capsys.readouterr()
    code = main(["audit", "verify", str(tmp_path / "second"), "--previous", str(kept),
                 "--vkey", installation.log_signer.vkey(), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"]
    # the auditor kept a checkpoint of a log that was then rewritten and re-signed: a fork
    from interdict.auditlog.note import sign_note

    first_events = lines(tmp_path / "first" / "events.jsonl")
    forked = Checkpoint(installation.home.log_origin, len(first_events), bytes(32))
    kept.write_text(sign_note(forked.to_text(), installation.log_signer))
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(tmp_path / "second", previous=[kept])
    assert caught.value.code == "checkpoint.inconsistent"
    assert caught.value.report.failure is not None
    assert caught.value.report.failure.file == str(kept)
