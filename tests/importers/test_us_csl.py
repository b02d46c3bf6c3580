"""Every row of the real US Consolidated Screening List excerpt becomes a valid entry that
admission accepts (as of the list's own time), with the list's program, legal basis,
identifiers and provenance; rows the list itself has ended since are recognised as such."""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.entries import Accepted, Admission, Published
from interdict.errors import DocumentError
from interdict.importers import Snapshot, us_csl
from interdict.importers.snapshot import entry
from interdict.keys import jws
from interdict.keys.jwk import unb64u
from interdict.keys.truststore import KeyInfo, TrustSnapshot

THEN = datetime(2019, 9, 1, tzinfo=UTC)  # shortly after the excerpt was generated
TODAY = datetime(2026, 11, 27, tzinfo=UTC)
CSL_MEASURES = frozenset({"credit.loan", "credit.card", "permit.business",
                          "procurement.contract"})


@pytest.fixture(scope="module")
def snapshot(csl_file: Path) -> Snapshot:
    return us_csl.read(csl_file)


def admitted(snapshot: Snapshot, now: datetime) -> dict[str, dict[str, Any]]:
    signer = jws.Signer(Ed25519PrivateKey.generate())
    trust = TrustSnapshot({signer.kid: KeyInfo(signer.kid, "issuer", "us-csl", signer.public_key,
                                               "active", now - timedelta(days=1), None)},
                          {"us-csl": CSL_MEASURES})
    admission = Admission(trust, {}, now)
    found = {}
    for seq, record in enumerate(snapshot.records.values(), start=1):
        document = entry("us-csl", snapshot, record, op="impose", revision=1, now=now,
                         valid_for=timedelta(days=365))
        token = signer.sign_document(document, jws.TYP_ENTRY)
        outcome = admission.admit(Published(seq, token, now))
        if isinstance(outcome, Accepted):
            found[record.record_id] = json.loads(unb64u(token.split(".")[1]))
    return found


@pytest.fixture(scope="module")
def accepted(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    return admitted(snapshot, THEN)


def test_all_115_rows_are_accepted_entries(csl_file: Path, snapshot: Snapshot,
                                           accepted: dict[str, dict[str, Any]]) -> None:
    with csl_file.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(snapshot.records) == len(accepted) == 115
    lists = Counter(d["legal_basis"]["instrument"] for d in accepted.values())
    assert lists == Counter(row["source"] for row in rows)
    assert Counter(d["subject"]["type"] for d in accepted.values())["vessel"] == 2
    assert {d["subject"]["names"][0]["value"] for d in accepted.values()} == {
        " ".join(row["name"].split()) for row in rows}


def test_rows_the_list_has_ended_since_are_not_entries_today(snapshot: Snapshot) -> None:
    today = admitted(snapshot, TODAY)
    ended = {r for r, record in snapshot.records.items()
             if record.ends_at is not None and record.ends_at <= TODAY}
    assert len(ended) == 5 and all(r.startswith("DPL-") for r in ended)
    assert set(today) == set(snapshot.records) - ended


def test_record_ids_are_stable_and_unique(csl_file: Path, snapshot: Snapshot) -> None:
    assert "SDN-20264" in snapshot.records  # OFAC's entity number when the row has one
    migeotte = [r for r, rec in snapshot.records.items()
                if rec.content["subject"]["names"][0]["value"] == "Gunther Migeotte"]
    assert len(migeotte) == 5 and all(r.startswith("EL-") for r in migeotte)
    assert set(us_csl.read(csl_file).records) == set(snapshot.records)


def test_measures_and_legal_basis_follow_the_list(accepted: dict[str, dict[str, Any]]) -> None:
    def measures(prefix: str) -> set[frozenset[str]]:
        return {frozenset(m["type"] for m in d["measures"])
                for r, d in accepted.items() if r.startswith(prefix)}

    assert measures("SDN-") == {frozenset({"credit.loan", "credit.card", "permit.business"})}
    assert measures("SSI-") == {frozenset({"credit.loan"})}
    assert measures("EL-") == {frozenset({"permit.business"})}
    assert measures("DTC-") == {frozenset({"permit.business", "procurement.contract"})}
    transneft = accepted["SSI-17254"]
    assert transneft["legal_basis"]["regime"] == "UKRAINE-EO13662"
    assert transneft["legal_basis"]["provision"] == ("Subject to Directive 2, Executive Order "
                                                     "13662 Directive Determination")
    el = next(d for r, d in accepted.items() if r.startswith("EL-"))
    assert "license requirement" in el["legal_basis"]["provision"]
    assert el["redress"]["authority"].endswith("Bureau of Industry and Security")
    assert transneft["source"] == {"publisher": us_csl.PUBLISHER, "record_id": "SSI-17254",
                                   "url": "http://bit.ly/1QWTIfE",
                                   "file": "us_trade_csl_2019.csv",
                                   "generated_at": "2019-08-13T00:00:00Z"}
    assert transneft["decision"]["authority"] == us_csl.LISTS["SSI"].redress["authority"]
    assert transneft["decision"]["date"] == transneft["listed_at"][:10]
    assert transneft["notice_exemption"]["instrument"] == us_csl.NOTICE_INSTRUMENT
    with_notice = [d for d in accepted.values() if d["decision"]["reference"].find(" FR ") > 0]
    assert with_notice, "the Federal Register citation is the decision, where the list has one"


def test_identifiers_dates_and_subject_types(accepted: dict[str, dict[str, Any]]) -> None:
    transneft = accepted["SSI-17254"]["subject"]
    assert {"scheme": "tax-id", "value": "7706061801"} in transneft["identifiers"]
    assert {"scheme": "company-register", "value": "1027700049486"} in transneft["identifiers"]
    ids = [i for d in accepted.values() for i in d["subject"].get("identifiers", [])]
    assert {"scheme": "company-register", "value": "CHE-427.006.032", "country": "CH"} in ids
    assert {"scheme": "imo", "value": "8898831"} in ids
    vessel = accepted["SDN-27304"]["subject"]
    assert vessel["type"] == "vessel" and vessel["nationalities"] == ["IR"]
    assert accepted["SDN-10727"]["subject"]["birth_dates"] == [{"date": "1974"},
                                                                {"date": "1975"}]
    types = {d["subject"]["names"][0]["value"]: d["subject"]["type"] for d in accepted.values()}
    assert types["ADRIAN MANUEL HERNANDEZ"] == "person"  # no type given: a name of words
    assert types["AL KAYALI CORPORATION"] == "organization"
    assert types["183rd Guard Air Defense Missile Regiment"] == "organization"
    listed = [d["listed_at"] for d in accepted.values()]
    assert "2017-10-16T00:00:00Z" in listed
    assert listed.count("2019-08-13T00:00:00Z") >= 80  # no start_date: the list's own date


def test_the_generation_date_is_the_newest_listing_unless_given(csl_file: Path,
                                                               snapshot: Snapshot) -> None:
    assert snapshot.generated_at == datetime(2019, 8, 13, tzinfo=UTC)
    given = datetime(2019, 9, 30, 12, tzinfo=UTC)
    assert us_csl.read(csl_file, generated_at=given).generated_at == given


@pytest.mark.parametrize(("data", "code"), [
    (b"\xff\xfenot utf-8", "import.csv"),
    (b"id,title\n1,x\n", "import.csv"),
    (b"source,name,start_date\nSDN,someone,\n", "import.no_generation_date"),
])
def test_files_that_are_not_a_csl_export_are_refused(data: bytes, code: str) -> None:
    with pytest.raises(DocumentError) as caught:
        us_csl.parse(data, "bad.csv", "0" * 64)
    assert caught.value.code == code and "bad.csv" in caught.value.message
