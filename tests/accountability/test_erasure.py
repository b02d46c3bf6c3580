"""Erasure after retention: a lifted entry's personal data leaves every table and export,
its digests stay, and `audit verify` still passes, reporting the documents as erased."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from interdict import schemas
from interdict.accountability import erasure, lifts, policy, stats, subject
from interdict.accountability.policy import DEFAULT_RETENTION_DAYS
from interdict.auditlog import log
from interdict.auditlog.bundle import BundleInvalid
from interdict.auditlog.export import export
from interdict.auditlog.verify import verify_bundle
from interdict.cli import main
from interdict.directives import deadletter
from interdict.directives.outbox import payload
from interdict.flows.dispatch import deliver_once, plan_once
from interdict.flows.erase import erase as erase_flow
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.keys import jws
from interdict.storage import reading, tombstones, transaction, utcnow
from interdict.storage.database import READ_ONLY
from interdict.storage.models import Directive, EntryRevision, QuarantinedEntry, Receipt
from tests.accountability.conftest import Make, events, publish, revoke, sync

WANG = {"type": "person",
        "names": [{"value": "Wang Fang", "kind": "primary", "script": "Latn"},
                  {"value": "王芳", "kind": "original_script", "script": "Hans"}],
        "identifiers": [{"scheme": "passport", "value": "P7654321", "country": "CN"},
                        {"scheme": "national-id", "value": "120101199105050022",
                         "country": "CN"}],
        "birth_dates": [{"date": "1991-05-05"}],
        "addresses": [{"city": "Tianjin", "country": "CN"}]}
PERSONAL = ("Wang Fang", "王芳", "P7654321", "120101199105050022", "1991-05-05", "Tianjin")
ZHANG = ("Zhang Wei", "E12345678")  # conftest.BASE_ENTRY: stays in force throughout
GARBAGE = b"not a token: Wang Fang 1991-05-05"
PAST_RETENTION = timedelta(days=DEFAULT_RETENTION_DAYS, hours=1)


def later(delta: timedelta = PAST_RETENTION) -> datetime:
    return utcnow() + delta


@pytest.fixture
def lifted(installation: Installation, prefect_api: str, make_entry: Make) -> Installation:
    """Wang Fang: case-10 imposed, a conflicting impose refused (quarantined, names the entry),
    then revoked, lifted at travel and loans; a garbage publication naming her, refused and
    attributable to nothing. Zhang Wei: case-1 in force."""
    wang, zhang = make_entry(entry_id="court-7/case-10", subject=WANG), make_entry()
    publish(installation, zhang, wang)
    sync(installation)
    publish(installation, wang, zhang)  # op.conflict: quarantined with their data
    installation.public.publish([GARBAGE.decode()])
    publish(installation, revoke(make_entry, "court-7/case-10"))
    report = sync(installation)
    assert report["quarantined"] == 3
    return installation


def _tables(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, each value as text (bytes decoded, JSON dumped)."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    found: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            texts = []
            for row in conn.execute(sa.select(table)):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        texts.append(bytes(value).decode("utf-8", "replace"))
                    elif isinstance(value, dict | list):
                        texts.append(json.dumps(value, ensure_ascii=False))
                    else:
                        texts.append(str(value))
            found[table.name] = texts
    return found


def _holding(inst: Installation, needles: tuple[str, ...]) -> dict[str, set[str]]:
    """Per table (of both databases), which needles it holds; JWS payloads decoded too."""
    held: dict[str, set[str]] = {}
    for engine in (inst.db, inst.public.engine):
        for name, texts in _tables(engine).items():
            hits = {n for n in needles for t in texts if n in t or n in _decoded(t)}
            if hits:
                held[name] = hits
    return held


def _decoded(text: str) -> str:
    parts = text.split(".")
    if len(parts) != 3:
        return ""
    from interdict.keys.jwk import unb64u
    try:
        return unb64u(parts[1]).decode("utf-8", "replace")
    except ValueError:
        return ""


def _bundle_text(bundle: Path) -> str:
    return "\n".join(_decoded(line) + line for path in sorted(bundle.rglob("*"))
                     if path.is_file() for line in path.read_text().splitlines())


def _documents(inst: Installation, entry_id: str) -> list[str]:
    with transaction(inst.db) as session:
        tokens = list(session.execute(sa.select(EntryRevision.jws).where(
            EntryRevision.entry_id == entry_id)).scalars())
        ids = list(session.execute(sa.select(Directive.directive_id).where(
            Directive.entry_id == entry_id)).scalars())
        tokens += session.execute(sa.select(Directive.jws).where(
            Directive.entry_id == entry_id)).scalars()
        tokens += session.execute(sa.select(Receipt.jws).where(
            Receipt.directive_id.in_(ids))).scalars()  # type: ignore[attr-defined]
    return tokens


def test_erasure_removes_personal_data_from_every_table_and_export_and_verify_passes(
        lifted: Installation, tmp_path: Path) -> None:
    held = _holding(lifted, PERSONAL)
    # receipts hold none here (an applied receipt names no one; a rejection's detail may)
    assert {"entry_revision", "directive", "quarantine", "published_entry"} <= set(held)
    with transaction(lifted.db) as session:
        slo_before = {x.directive_id: (x.trigger, x.receipt_at) for x in lifts.load(session)}
    accepted = {e["refs"]["digest"] for e in events(lifted, "entry.accepted")
                if e["refs"]["entry_id"] == "court-7/case-10"}

    report = erasure.erase(lifted, now=later())

    assert report.entries == 1 and report.quarantine_by_age == 1
    assert report.to_json()["documents"] == {"entry": 2, "directive": 4, "receipt": 4,
                                             "quarantine": 2, "import": 0}
    assert report.published == 4  # two revisions, the refused impose, the garbage
    assert report.unconfirmed == {}  # the built-in agencies confirm in their lift receipts
    assert _holding(lifted, PERSONAL) == {}
    # the entry in force is untouched, and so is the refused copy that names it
    assert {"entry_revision", "directive", "quarantine"} <= set(_holding(lifted, ZHANG))
    # digests, ids, statuses and dates stay: the tombstones name what was erased
    with transaction(lifted.db) as session:
        stored = set(session.execute(sa.select(EntryRevision.digest).where(
            EntryRevision.entry_id == "court-7/case-10")).scalars())
        markers = [tombstones.read(t) for t in session.execute(sa.select(EntryRevision.jws).where(
            EntryRevision.entry_id == "court-7/case-10")).scalars()]
        slo_after = {x.directive_id: (x.trigger, x.receipt_at) for x in lifts.load(session)}
        assert stats.collect(session, utcnow())["active"]["entries"] == 1
    assert stored == accepted == {m["digest"] for m in markers if m}
    assert slo_after == slo_before  # lift latency still measured from what the tombstones kept
    erased = events(lifted, erasure.ERASED)
    assert len(erased) == 12 and {e["refs"]["kind"] for e in erased} == {
        "entry", "directive", "receipt", "quarantine"}
    (summary,) = events(lifted, erasure.ENTRY_ERASED)
    assert "unconfirmed" not in summary["refs"]
    assert summary["refs"]["status"] == "revoked" and summary["outcome"] == "ok"
    logged = json.dumps(events(lifted), ensure_ascii=False)
    assert not [p for p in PERSONAL if p in logged]
    for event in [*erased, summary]:
        schemas.check("audit-event", event)

    bundle = tmp_path / "bundle"
    exported = export(lifted, bundle, actor=log.operator())
    assert exported.erased == 10 and exported.entries == 1
    assert not [p for p in PERSONAL if p in _bundle_text(bundle)]
    listed = [json.loads(line) for line in (bundle / "erased.jsonl").read_text().splitlines()]
    assert {x["digest"] for x in listed if x["kind"] == "entry"} == accepted
    verified = verify_bundle(bundle, vkey=lifted.log_signer.vkey())
    assert verified.ok and not verified.warnings
    assert verified.checks["erased: listed, the log records the erasure"] == 10
    assert verified.checks["erased after retention (entry), as the log records"] == 2
    assert verified.checks["erased after retention (directive), as the log records"] == 4
    assert verified.checks["erased after retention (receipt), as the log records"] == 4

    # the person's report finds nothing; a rerun erases nothing new
    who = subject.SubjectId.parse("passport:P7654321")
    assert subject.report(lifted, who, "SAR 2029-1")["measures"] == []
    size = len(events(lifted))
    again = erasure.erase(lifted, now=later())
    assert again.entries == 0 and not again.documents and len(events(lifted)) == size


def test_in_force_and_within_retention_are_untouched_and_dry_run_changes_nothing(
        lifted: Installation) -> None:
    before = _holding(lifted, PERSONAL)
    soon = erasure.erase(lifted, now=later(timedelta(days=30)))
    assert soon.entries == 0 and not soon.documents
    dry = erasure.erase(lifted, now=later(), dry_run=True)
    assert dry.entries == 1 and dry.documents["entry"] == 2 and dry.published == 0
    assert _holding(lifted, PERSONAL) == before
    assert not events(lifted, erasure.ERASED)


def test_a_crash_between_entries_leaves_each_whole_and_a_rerun_finishes(
        lifted: Installation, make_entry: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(lifted, make_entry(entry_id="court-7/case-11"))
    sync(lifted)
    publish(lifted, revoke(make_entry, "court-7/case-11"))
    sync(lifted)
    real, calls = erasure._erase_entry, []

    def crash_after_first(*args: Any, **kwargs: Any) -> None:
        if calls:
            raise RuntimeError("power cut")
        calls.append(args[1])
        real(*args, **kwargs)

    monkeypatch.setattr(erasure, "_erase_entry", crash_after_first)
    with pytest.raises(RuntimeError, match="power cut"):
        erasure.erase(lifted, now=later())
    (done,) = calls
    pending = {"court-7/case-10", "court-7/case-11"} - {done[1]}
    assert all(tombstones.is_tombstone(t) for t in _documents(lifted, done[1]))
    assert not any(tombstones.is_tombstone(t) for t in _documents(lifted, pending.pop()))
    monkeypatch.setattr(erasure, "_erase_entry", real)
    rerun = erasure.erase(lifted, now=later())
    assert rerun.entries == 1
    assert all(tombstones.is_tombstone(t) for e in ("court-7/case-10", "court-7/case-11")
               for t in _documents(lifted, e))
    assert len(events(lifted, erasure.ENTRY_ERASED)) == 2


def _imposed_then_revoked(inst: Installation, make_entry: Make, entry_id: str) -> None:
    """An entry imposed and delivered everywhere, then revoked: its lifts are routed and
    wait in the outbox, undelivered."""
    home = str(inst.home.root)
    publish(inst, make_entry(entry_id=entry_id, subject=WANG))
    ingest_once(home), plan_once(home)
    for agency in inst.agency_ids():
        deliver_once(home, agency)
    publish(inst, revoke(make_entry, entry_id))
    ingest_once(home), plan_once(home)


def test_an_entry_whose_lift_is_not_delivered_is_held(installation: Installation,
                                                      make_entry: Make) -> None:
    _imposed_then_revoked(installation, make_entry, "court-7/case-20")
    report = erasure.erase(installation, now=later())
    assert report.entries == 0
    assert report.held == {"lift_pending": 1}
    assert report.held_by_agency == {"loans": 1, "travel": 1}
    assert _holding(installation, ("P7654321",))


def test_an_entry_whose_lift_was_rejected_is_held_until_dead_letter_retry_delivers_it(
        installation: Installation, make_entry: Make) -> None:
    _imposed_then_revoked(installation, make_entry, "court-7/case-21")
    home = str(installation.home.root)
    with transaction(installation.db) as session:  # travel refused its lift (it flagged it)
        lift = session.execute(sa.select(Directive).where(
            Directive.entry_id == "court-7/case-21", Directive.agency == "travel",
            Directive.action == "lift")).scalar_one()
        lift.status, lift.attempts = "rejected", 1
        lift.last_error = "receipt.flagged_lift: agency travel flagged lift"
    deliver_once(home, "loans")
    report = erasure.erase(installation, now=later())
    assert (report.entries, report.held, report.held_by_agency) == (
        0, {"lift_rejected": 1}, {"travel": 1})

    with transaction(installation.db) as session:  # settled with the agency: send it again
        retried = deadletter.retry_dead(session, actor="operator:t", agency="travel")
    assert retried.requeued == [lift.directive_id]
    assert deliver_once(home, "travel").delivered == 1
    report = erasure.erase(installation, now=later())
    assert report.entries == 1 and not report.held
    assert not _holding(installation, ("P7654321",))


def test_a_tombstoned_directive_is_never_sent_again(lifted: Installation) -> None:
    erasure.erase(lifted, now=later())
    with transaction(lifted.db) as session:
        rows = list(session.execute(sa.select(Directive).where(
            Directive.entry_id == "court-7/case-10")).scalars())
        assert deadletter.requeue(session, rows, actor="operator:t", reason="test") == []
        statuses = set(session.execute(sa.select(Directive.status).where(
            Directive.entry_id == "court-7/case-10")).scalars())
    assert statuses == {"delivered"}


def test_quarantine_show_and_retry_see_the_tombstone(lifted: Installation,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    erasure.erase(lifted, now=later())
    with transaction(lifted.db) as session:
        seqs = list(session.execute(sa.select(QuarantinedEntry.public_seq).where(
            QuarantinedEntry.detail == erasure.ERASED_DETAIL)).scalars())
    assert len(seqs) == 2  # Wang Fang's refused copy and the garbage; Zhang Wei's is kept
    assert main(["--home", str(lifted.home.root), "quarantine", "retry", "--json"]) == 0
    retried = {r["seq"]: r["outcome"] for r in json.loads(capsys.readouterr().out)}
    assert [seq for seq, outcome in retried.items() if outcome == "erased"] == sorted(seqs)
    assert set(retried.values()) == {"erased", "refused"}
    assert main(["--home", str(lifted.home.root), "quarantine", "show", str(seqs[0]),
                 "--json", "--purpose", "ticket 9"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["detail"] == erasure.ERASED_DETAIL
    assert tombstones.read(shown["raw"])["kind"] == "quarantine"


def test_erase_command_and_flow_follow_the_policys_retention(
        lifted: Installation, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = ["--home", str(lifted.home.root)]
    assert main([*home, "erase", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and dry["entries"] == 0  # nothing is 3 years old yet
    assert dry["retention_days"] == DEFAULT_RETENTION_DAYS
    with transaction(lifted.db) as session:  # a policy that erases right after the lift
        document = {**policy.active(session).document, "version": "no-retention",
                    "retention_days": 0}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    assert main([*home, "policy", "diff", str(path), "--json"]) == 0
    assert {"measure": "*", "change": "retention_days", "before": None, "after": 0} in \
        json.loads(capsys.readouterr().out)
    assert main([*home, "policy", "apply", str(path), "--json"]) == 0
    capsys.readouterr()
    ran = erase_flow(str(lifted.home.root))
    assert ran["retention_days"] == 0 and ran["entries"] == 1
    assert ran["checkpoint"]["size"] == len(events(lifted))
    assert main([*home, "erase"]) == 0
    assert "erased 0 entries" in capsys.readouterr().out


def test_a_bundle_holding_a_document_the_log_erased_fails(lifted: Installation,
                                                           tmp_path: Path) -> None:
    before = tmp_path / "before"
    export(lifted, before, actor=log.operator())
    erasure.erase(lifted, now=later())
    after = tmp_path / "after"
    export(lifted, after, actor=log.operator())
    kept = [line for line in (before / "entries.jsonl").read_text().splitlines()
            if "court-7/case-10" in _decoded(line)]
    with (after / "entries.jsonl").open("a") as handle:
        handle.write(kept[0] + "\n")
    with pytest.raises(BundleInvalid) as caught:
        verify_bundle(after)
    assert caught.value.code == "erased.present"
    # the bundle exported before erasure still verifies: the log only grew since
    shutil.rmtree(after)
    assert verify_bundle(before).ok


def test_an_agency_that_does_not_confirm_deletion_is_chased(lifted: Installation) -> None:
    """The built-in agencies confirm deletion (receipt v2 ``erased: true``); here the travel
    agency's stored lift receipt is replaced by one it signs saying it kept the data."""
    from interdict.keys import keyfile

    travel = jws.Signer(keyfile.load(lifted.home.agencies_dir / "travel" / "receipt.key"))
    with transaction(lifted.db) as session:
        lift = session.execute(sa.select(Directive.directive_id).where(
            Directive.entry_id == "court-7/case-10", Directive.agency == "travel",
            Directive.action == "lift")).scalar_one()
        receipt = session.get_one(Receipt, lift)
        receipt.jws = travel.sign_document({**payload(receipt.jws), "erased": False},
                                           jws.TYP_RECEIPT)
        session.add(receipt)
    report = erasure.erase(lifted, now=later())
    assert report.unconfirmed == {"travel": 1}
    (summary,) = events(lifted, erasure.ENTRY_ERASED)
    assert summary["refs"]["unconfirmed"] == "travel" and summary["outcome"] == "unconfirmed"
    with transaction(lifted.db) as session:
        marker = tombstones.read(session.get_one(Receipt, lift).jws)
    assert marker is not None and marker["kept"]["erased"] is False


def test_a_later_revision_waiting_in_quarantine_is_not_erased_with_the_old_entry(
        lifted: Installation, make_entry: Make) -> None:
    """A re-imposition of case-10 signed with a key not registered yet waits in quarantine
    (header.kid_unknown) to be retried: erasing the lifted revisions must leave it, and its
    public copy, alone."""
    stranger = jws.Signer(Ed25519PrivateKey.generate())
    waiting = stranger.sign_document(
        make_entry(entry_id="court-7/case-10", subject=WANG, revision=3), jws.TYP_ENTRY)
    (seq,) = lifted.public.publish([waiting])
    sync(lifted)
    with transaction(lifted.db) as session:
        assert session.execute(sa.select(QuarantinedEntry.reason).where(
            QuarantinedEntry.public_seq == seq)).scalar_one() == "header.kid_unknown"

    report = erasure.erase(lifted, now=later())
    assert report.entries == 1 and report.documents["quarantine"] == 2  # as before it came
    with transaction(lifted.db) as session:
        row = session.execute(sa.select(QuarantinedEntry).where(
            QuarantinedEntry.public_seq == seq)).scalar_one()
    assert bytes(row.raw).decode() == waiting and row.detail != erasure.ERASED_DETAIL
    (published,) = lifted.public.read_after(seq - 1, 1)
    assert published.jws == waiting


def test_erasure_reads_without_the_write_lock_and_locks_only_the_rows_it_erases(
        lifted: Installation) -> None:
    """The candidates and the quarantine scan are read in a reading session; a write
    transaction reads quarantined rows only by id."""
    seen: list[tuple[bool, str]] = []

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((bool(conn.get_execution_options().get(READ_ONLY)), statement))

    sa.event.listen(lifted.db, "before_cursor_execute", record)
    try:
        erasure.erase(lifted, now=later())
    finally:
        sa.event.remove(lifted.db, "before_cursor_execute", record)
    written = [s for read_only, s in seen if not read_only]
    read = [s for read_only, s in seen if read_only]
    assert any("FROM quarantine" in s for s in read)
    assert any("entry.updated_at <=" in s for s in read)  # the candidates
    assert not any("entry.updated_at <=" in s for s in written)
    assert all(" IN (" in s for s in written if "FROM quarantine" in s)
    assert not any(s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
                   for s in read)


def test_a_reading_session_does_not_keep_a_writer_waiting(lifted: Installation) -> None:
    with reading(lifted.db) as session:
        before = session.execute(sa.select(sa.func.count()).select_from(
            QuarantinedEntry)).scalar_one()
        with transaction(lifted.db) as writer:  # would wait on a write lock taken by a read
            writer.execute(sa.update(QuarantinedEntry).values(detail="touched"))
    assert before == 3
