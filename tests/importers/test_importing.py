"""Importing snapshots into the public database, on SQLite and PostgreSQL: idempotent
re-imports, amends and revokes from a newer snapshot, the shrink guard, older snapshots, renewal,
and a crash between publishing and recording."""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interdict import issuers
from interdict.agencies.travel import MATCHED_ON
from interdict.cli import main
from interdict.errors import InterdictError
from interdict.importers import Snapshot, import_snapshot, state, un_xml, us_csl
from interdict.installation import Installation
from interdict.keys.jwk import unb64u
from interdict.publicdb import published_entry
from interdict.storage import transaction, utcnow
from interdict.storage.models import AuditEvent, Directive, ImportRecord, ImportRun

FIRST_MONTH, NEXT_MONTH = "2026-02-27T00:00:09Z", "2026-03-27T00:00:00Z"
SUBSET = 120  # records of the real file the state tests use: the full file only where it counts


@functools.cache
def _real_records(un_file: Path) -> tuple[ET.Element, ...]:
    root = ET.parse(un_file).getroot()
    return (*root.iter("INDIVIDUAL"), *root.iter("ENTITY"))


def derived_un(un_file: Path, *, generated: str = NEXT_MONTH, keep: int | None = SUBSET,
               drop: set[str] | frozenset[str] = frozenset(),
               rename: dict[str, str] | None = None) -> Snapshot:
    """A snapshot made from the real file: its first ``keep`` records, some of them dropped
    or renamed, generated at ``generated``."""
    root = ET.Element("CONSOLIDATED_LIST", {"dateGenerated": generated})
    parents = {"INDIVIDUAL": ET.SubElement(root, "INDIVIDUALS"),
               "ENTITY": ET.SubElement(root, "ENTITIES")}
    for element in _real_records(un_file)[:keep]:
        reference = (element.findtext("REFERENCE_NUMBER") or "").strip()
        if reference in drop:
            continue
        copied = copy.deepcopy(element)
        if rename and reference in rename:
            first = copied.find("FIRST_NAME")
            assert first is not None
            first.text = rename[reference]
        parents[copied.tag].append(copied)
    data = ET.tostring(root, encoding="utf-8")
    return un_xml.parse(data, "un_derived.xml", hashlib.sha256(data).hexdigest())


def published(inst: Installation, after: int = 0) -> list[dict[str, Any]]:
    with inst.public.engine.connect() as conn:
        tokens = conn.execute(sa.select(published_entry.c.jws).where(published_entry.c.seq > after)
                              .order_by(published_entry.c.seq)).scalars().all()
    return [json.loads(unb64u(t.split(".")[1])) for t in tokens]


def records(inst: Installation, source: str) -> dict[str, ImportRecord]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(ImportRecord).where(ImportRecord.source == source))
        return {r.record_id: r for r in rows.scalars()}


def refs(inst: Installation, action: str) -> list[dict[str, Any]]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()
        return [e["refs"] for e in map(json.loads, rows) if e["action"] == action]


def first_ids(un_file: Path, n: int) -> list[str]:
    people = [e for e in _real_records(un_file) if e.tag == "INDIVIDUAL"]
    return [(e.findtext("REFERENCE_NUMBER") or "").strip() for e in people][:n]


def test_reimporting_the_same_file_publishes_nothing(list_issuers: Installation,
                                                     un_file: Path) -> None:
    first = import_snapshot(list_issuers, un_xml.read(un_file), issuer="un-sc").to_json()
    assert first["published"] == {"impose": 1003, "amend": 0, "revoke": 0}
    assert list_issuers.public.head() == 1003
    again = import_snapshot(list_issuers, un_xml.read(un_file), issuer="un-sc").to_json()
    assert again["published"] == {"impose": 0, "amend": 0, "revoke": 0}
    assert again["unchanged"] == 1003 and list_issuers.public.head() == 1003
    assert len(records(list_issuers, "un-sc")) == 1003
    events = refs(list_issuers, "import.published")
    assert [(e["impose"], e["unchanged"]) for e in events] == [(1003, 0), (0, 1003)]
    assert events[0]["file_digest"] == f"sha256:{first['sha256']}"


def test_a_newer_snapshot_amends_changed_records_and_revokes_missing_ones(
        list_issuers: Installation, un_file: Path) -> None:
    import_snapshot(list_issuers, derived_un(un_file, generated=FIRST_MONTH), issuer="un-sc")
    gone = set(first_ids(un_file, 4)[1:])
    newer = derived_un(un_file, drop=gone, rename={"CDi.001": "ERICK"})
    report = import_snapshot(list_issuers, newer, issuer="un-sc").to_json()
    assert report["published"] == {"impose": 0, "amend": 1, "revoke": 3}
    documents = published(list_issuers, after=SUBSET)
    assert {(d["entry_id"], d["op"], d["revision"]) for d in documents} == {
        ("un-sc/CDi.001", "amend", 2), *(("un-sc/" + r, "revoke", 2) for r in gone)}
    amend = next(d for d in documents if d["op"] == "amend")
    assert amend["subject"]["names"][0]["value"] == "ERICK BADEGE"
    assert amend["source"]["file"] == "un_derived.xml"
    revoke = next(d for d in documents if d["op"] == "revoke")
    assert revoke["reason"].startswith("delisted: absent from un_derived.xml")
    assert {r.status for k, r in records(list_issuers, "un-sc").items() if k in gone} \
        == {"revoked"}
    # the same newer snapshot again: nothing; a later one that lists them again: relisted
    assert import_snapshot(list_issuers, newer, issuer="un-sc").plan.changes == []
    back = import_snapshot(list_issuers, derived_un(un_file, generated="2026-04-27T00:00:00Z"),
                           issuer="un-sc").to_json()
    assert back["published"] == {"impose": 3, "amend": 1, "revoke": 0}
    assert {d["revision"] for d in published(list_issuers, after=SUBSET + 4)} == {3}


def test_an_older_snapshot_is_refused(list_issuers: Installation, un_file: Path) -> None:
    import_snapshot(list_issuers, derived_un(un_file), issuer="un-sc")
    with pytest.raises(InterdictError) as caught:
        import_snapshot(list_issuers, un_xml.read(un_file), issuer="un-sc")
    assert caught.value.code == "import.older_snapshot"
    assert "before un_derived.xml (2026-03-27T00:00:00Z)" in caught.value.message
    assert list_issuers.public.head() == SUBSET


def test_the_shrink_guard_refuses_a_truncated_list_unless_told(
        list_issuers: Installation, un_file: Path) -> None:
    import_snapshot(list_issuers, derived_un(un_file, generated=FIRST_MONTH), issuer="un-sc")
    assert (state.shrink_limit(SUBSET), state.shrink_limit(1003)) == (6, 50)
    limit = state.shrink_limit(SUBSET)
    truncated = derived_un(un_file, drop=set(first_ids(un_file, limit + 1)))
    with pytest.raises(InterdictError) as caught:
        import_snapshot(list_issuers, truncated, issuer="un-sc")
    assert caught.value.code == "import.shrink" and "--allow-shrink" in caught.value.message
    assert "drops 7 of the 120 records in force" in caught.value.message
    assert list_issuers.public.head() == SUBSET
    assert {r.status for r in records(list_issuers, "un-sc").values()} == {"active"}
    within = derived_un(un_file, drop=set(first_ids(un_file, limit)))
    assert import_snapshot(list_issuers, within, issuer="un-sc").to_json()["published"][
        "revoke"] == limit
    report = import_snapshot(list_issuers, truncated, issuer="un-sc", allow_shrink=True)
    assert report.to_json()["published"]["revoke"] == 1


def test_entries_are_renewed_when_a_quarter_of_their_validity_is_left(
        list_issuers: Installation, csl_file: Path) -> None:
    start = utcnow().replace(microsecond=0)
    snapshot = us_csl.read(csl_file)
    first = import_snapshot(list_issuers, snapshot, issuer="us-csl", now=start).to_json()
    assert first["published"]["impose"] == 110 and len(first["ended"]) == 5
    early = import_snapshot(list_issuers, snapshot, issuer="us-csl",
                            now=start + timedelta(days=200)).to_json()
    assert early["published"] == {"impose": 0, "amend": 0, "revoke": 0}
    late = import_snapshot(list_issuers, snapshot, issuer="us-csl",
                           now=start + timedelta(days=300)).to_json()
    assert late["published"]["amend"] == late["renewed"] == 110
    renewed = published(list_issuers, after=110)
    assert {d["expires_at"] for d in renewed if d["entry_id"].startswith("us-csl/SDN")} == {
        (start + timedelta(days=665)).isoformat().replace("+00:00", "Z")}
    # a renewal is an extension: it carries a new assessment, naming this import
    before = {d["entry_id"]: d["assessment"] for d in published(list_issuers, after=0)[:110]}
    assert all(d["assessment"] != before[d["entry_id"]] for d in renewed)


def test_a_listing_the_list_ends_early_is_revoked(list_issuers: Installation,
                                                   csl_file: Path) -> None:
    then = datetime(2019, 9, 1, tzinfo=UTC)
    import_snapshot(list_issuers, us_csl.read(csl_file), issuer="us-csl", now=then)
    rows = list(csv.DictReader(io.StringIO(csl_file.read_text(encoding="utf-8"))))
    for row in rows:
        if row["name"] == "ADAM AL HERZ":
            row["end_date"] = "2019-09-15"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    ended = us_csl.parse(data, "csl_later.csv", hashlib.sha256(data).hexdigest())
    report = import_snapshot(list_issuers, ended, issuer="us-csl",
                             now=datetime(2019, 10, 1, tzinfo=UTC))
    (change,) = report.plan.changes
    assert (change.op, change.why) == ("revoke", "ended")
    assert change.document["reason"].startswith("ended on 2019-09-15T00:00:00Z")


def test_a_crash_after_publishing_is_settled_by_the_next_import(
        list_issuers: Installation, un_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_finish = state._finish

    def crash(*args: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(state, "_finish", crash)
    with pytest.raises(RuntimeError):
        import_snapshot(list_issuers, derived_un(un_file), issuer="un-sc")
    assert list_issuers.public.head() == SUBSET and records(list_issuers, "un-sc") == {}
    monkeypatch.setattr(state, "_finish", real_finish)
    again = import_snapshot(list_issuers, derived_un(un_file), issuer="un-sc").to_json()
    assert again["published"]["impose"] == 0 and list_issuers.public.head() == SUBSET
    with transaction(list_issuers.db) as session:
        statuses = Counter(session.execute(sa.select(ImportRun.status)).scalars())
    assert statuses == {"done": 2}


def test_a_crash_before_publishing_publishes_everything_once_later(
        list_issuers: Installation, un_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(tokens: Any) -> None:
        raise RuntimeError("public database unreachable")

    monkeypatch.setattr(list_issuers.public, "publish", crash)
    with pytest.raises(RuntimeError):
        import_snapshot(list_issuers, derived_un(un_file), issuer="un-sc")
    monkeypatch.undo()
    assert import_snapshot(list_issuers, derived_un(un_file), issuer="un-sc"
                           ).to_json()["published"]["impose"] == SUBSET
    assert list_issuers.public.head() == SUBSET
    with transaction(list_issuers.db) as session:
        statuses = Counter(session.execute(sa.select(ImportRun.status)).scalars())
    assert statuses == {"abandoned": 1, "done": 1}


def test_an_issuer_without_the_measures_is_refused_before_anything_is_published(
        installation: Installation, un_file: Path) -> None:
    issuers.add(installation, "border", name="Border police", measures=["travel.air"])
    for issuer, code in (("border", "import.measures_not_authorised"),
                         ("nobody", "issuer.unknown")):
        with pytest.raises(InterdictError) as caught:
            import_snapshot(installation, derived_un(un_file), issuer=issuer)
        assert caught.value.code == code
    assert installation.public.head() == 0


def test_the_import_commands(list_issuers: Installation, un_file: Path, csl_file: Path,
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERDICT_HOME", str(list_issuers.home.root))
    assert main(["import", "us-csl", str(csl_file), "--issuer", "us-csl", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["published"]["impose"] == 110 and report["records"] == 115
    assert main(["import", "us-csl", str(csl_file), "--issuer", "us-csl"]) == 0
    assert "published 0 impose" in capsys.readouterr().out
    assert main(["import", "us-csl", str(csl_file), "--issuer", "us-csl",
                 "--generated-at", "2019-01-01T00:00:00Z"]) == 1
    assert capsys.readouterr().err.startswith("error[import.older_snapshot]")
    assert main(["import", "un-xml", str(csl_file), "--issuer", "un-sc"]) == 1
    assert capsys.readouterr().err.startswith("error[import.xml]")
    assert main(["import", "un-xml", str(un_file), "--issuer", "un-sc", "--valid-for",
                 "4000"]) == 1
    assert capsys.readouterr().err.startswith("error[import.valid_for]")


# -- end to end: both real lists through Prefect to the agencies ---------------------------

def _holders(documents: list[dict[str, Any]], prefixes: tuple[str, ...]) -> set[str]:
    return {d["entry_id"] for d in documents
            if any(m["type"].startswith(prefixes) for m in d.get("measures", []))}


@pytest.mark.slow
def test_both_lists_import_ingest_and_dispatch_end_to_end(
        list_issuers: Installation, un_file: Path, csl_file: Path, prefect_api: str) -> None:
    from interdict import flows

    inst = list_issuers
    import_snapshot(inst, un_xml.read(un_file), issuer="un-sc")
    import_snapshot(inst, us_csl.read(csl_file), issuer="us-csl")
    report = flows.sync(str(inst.home.root)).to_json()
    assert (report["accepted"], report["quarantined"]) == (1003 + 110, 0)
    documents = published(inst)
    expected = {"travel": _holders(documents, ("travel.",)),
                "loans": _holders(documents, ("credit.",)),
                "permits": _holders(documents, ("permit.",))}
    # travel matches bookings on a travel document: without one it flags the directive
    matched = {d["entry_id"] for d in documents
               if any(i["scheme"] in MATCHED_ON for i in d["subject"].get("identifiers", []))}
    flagged = {"travel": len(expected["travel"] - matched), "loans": 0, "permits": 0}
    expected["travel"] &= matched
    assert {a: d["delivered"] for a, d in report["directives"].items()} == {
        a: len(ids) for a, ids in expected.items()}
    assert {a: d["flagged"] for a, d in report["directives"].items()} == flagged
    assert flagged["travel"] > 0 and expected["travel"]
    assert all(d["failed"] == d["dead_lettered"] == d["rejected"] == 0
               for d in report["directives"].values())
    travel, loans, permits = (inst.adapter(a) for a in ("travel", "loans", "permits"))
    arabic = "محمد صلاح الدين عبدالحليم زيدان"  # QDi.001's name in its original script
    # QDi.001's listing gives no travel document: travel flags it rather than refuse by name
    assert travel.check_booking(name=arabic).allowed
    with transaction(inst.db) as session:
        assert session.execute(sa.select(Directive.status).where(
            Directive.agency == "travel", Directive.entry_id == "un-sc/QDi.001")).scalar_one() \
            == "flagged"
    assert not loans.check_loan(name=arabic).allowed
    assert permits.check_permit(name="AK TRANSNEFT OAO").allowed  # SSI: credit only
    assert not loans.check_loan(name="AK TRANSNEFT OAO").allowed
    assert not permits.check_permit(name="AL KAYALI CORPORATION").allowed  # DPL

    iraqi = next(d["entry_id"].split("/", 1)[1] for d in documents
                 if d.get("legal_basis", {}).get("regime") == "Iraq"
                 and d["subject"]["type"] == "person")
    gone = {"QDi.001", "CDe.001", iraqi}
    newer = derived_un(un_file, keep=None, drop=gone, rename={"CDi.001": "ERICK"})
    assert import_snapshot(inst, newer, issuer="un-sc").to_json()["published"] == {
        "impose": 0, "amend": 1, "revoke": 3}
    sync = flows.sync(str(inst.home.root)).to_json()
    assert (sync["accepted"], sync["quarantined"]) == (4, 0)
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(Directive.entry_id, Directive.agency, Directive.action,
                                         Directive.status)
                               .where(Directive.revision == 2)).all()
    # lifts are never flagged; an amend for someone with no travel document is, by travel
    assert all(status == "delivered" or (agency, action, status) == ("travel", "amend", "flagged")
               for _, agency, action, status in rows)
    actions = {(e.split("/", 1)[1], agency, action) for e, agency, action, _ in rows}
    assert actions == {("QDi.001", "travel", "lift"), ("QDi.001", "loans", "lift"),
                       ("CDe.001", "loans", "lift"), ("CDe.001", "permits", "lift"),
                       (iraqi, "loans", "lift"),
                       ("CDi.001", "travel", "amend"), ("CDi.001", "loans", "amend")}
    assert travel.check_booking(name=arabic).allowed and loans.check_loan(name=arabic).allowed
    assert not loans.check_loan(name="ERICK BADEGE").allowed
    assert loans.check_loan(name="ERIC BADEGE").allowed
