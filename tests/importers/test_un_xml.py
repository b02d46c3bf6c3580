"""Every record of the real UN Security Council Consolidated List becomes a valid entry that
admission accepts, with its names in their original scripts, aliases, documents, birth dates,
regime, legal basis, listing date and provenance."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.entries import Accepted, Admission, Published
from interdict.errors import DocumentError
from interdict.importers import Snapshot, un_xml
from interdict.importers.snapshot import entry
from interdict.keys import jws
from interdict.keys.jwk import unb64u
from interdict.keys.truststore import KeyInfo, TrustSnapshot

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
UN_MEASURES = frozenset({"travel.air", "travel.rail", "travel.sea", "credit.loan",
                         "credit.card", "permit.business"})


@pytest.fixture(scope="module")
def snapshot(un_file: Path) -> Snapshot:
    return un_xml.read(un_file)


@pytest.fixture(scope="module")
def accepted(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    """Each record built, signed and admitted as ingest would; record id -> signed payload."""
    signer = jws.Signer(Ed25519PrivateKey.generate())
    trust = TrustSnapshot({signer.kid: KeyInfo(signer.kid, "issuer", "un-sc", signer.public_key,
                                               "active", NOW - timedelta(days=1), None)},
                          {"un-sc": UN_MEASURES})
    admission = Admission(trust, {}, NOW)
    found = {}
    for seq, record in enumerate(snapshot.records.values(), start=1):
        document = entry("un-sc", snapshot, record, op="impose", revision=1, now=NOW,
                         valid_for=timedelta(days=365))
        token = signer.sign_document(document, jws.TYP_ENTRY)
        outcome = admission.admit(Published(seq, token, NOW))
        assert isinstance(outcome, Accepted), (record.record_id, outcome)
        found[record.record_id] = json.loads(unb64u(token.split(".")[1]))
    return found


def _records(un_file: Path) -> list[ET.Element]:
    root = ET.parse(un_file).getroot()
    return [*root.iter("INDIVIDUAL"), *root.iter("ENTITY")]


def test_all_1003_records_are_accepted_entries(snapshot: Snapshot,
                                               accepted: dict[str, dict[str, Any]]) -> None:
    assert len(snapshot.records) == len(accepted) == 1003
    kinds = Counter(d["subject"]["type"] for d in accepted.values())
    assert kinds == {"person": 730, "organization": 273}
    assert all(d["entry_id"] == f"un-sc/{r}" for r, d in accepted.items())
    assert snapshot.generated_at == datetime(2026, 2, 27, 0, 0, 9, 554000, tzinfo=UTC)


def test_names_in_original_scripts_survive_signing_and_admission(
        un_file: Path, accepted: dict[str, dict[str, Any]]) -> None:
    scripts: Counter[str] = Counter()
    checked = 0
    for element in _records(un_file):
        reference = (element.findtext("REFERENCE_NUMBER") or "").strip()
        names = accepted[reference]["subject"]["names"]
        for original in element.iter("NAME_ORIGINAL_SCRIPT"):
            text = " ".join((original.text or "").split())
            if text:
                (found,) = [n for n in names
                            if n["value"] == text and n["kind"] == "original_script"]
                scripts[found["script"]] += 1
                checked += 1
    assert checked == 378
    assert scripts["Arab"] >= 360 and scripts["Cyrl"] == 11
    names = accepted["QDi.001"]["subject"]["names"]
    assert {"value": "محمد صلاح الدين عبدالحليم زيدان", "kind": "original_script",
            "script": "Arab"} in names


def test_aliases_keep_their_quality(un_file: Path, accepted: dict[str, dict[str, Any]]) -> None:
    qualities = Counter()
    for element in _records(un_file):
        names = accepted[(element.findtext("REFERENCE_NUMBER") or "").strip()]["subject"]["names"]
        for alias in [*element.iter("INDIVIDUAL_ALIAS"), *element.iter("ENTITY_ALIAS")]:
            value = " ".join((alias.findtext("ALIAS_NAME") or "").split())
            if value:
                quality = (alias.findtext("QUALITY") or "").strip().lower()
                kind = "former" if quality == "f.k.a." else "alias"
                (found,) = [n for n in names if n["value"] == value and n["kind"] == kind]
                qualities[found.get("quality", "-")] += 1
    assert qualities["good"] > 1000 and qualities["low"] > 500
    gaston = accepted["CDi.003"]["subject"]["names"]
    assert {"value": "Rumuli", "kind": "alias", "script": "Latn", "quality": "low"} in gaston


def test_identifiers_birth_dates_and_nationalities(accepted: dict[str, dict[str, Any]]) -> None:
    people = [d["subject"] for d in accepted.values() if d["subject"]["type"] == "person"]
    schemes = Counter(i["scheme"] for s in people for i in s.get("identifiers", []))
    assert schemes["passport"] >= 300 and schemes["national-id"] >= 140
    with_country = [i for s in people for i in s.get("identifiers", []) if "country" in i]
    assert len(with_country) >= 250
    births = [b for s in people for b in s.get("birth_dates", [])]
    assert sum("to" in b for b in births) >= 31  # BETWEEN ranges
    assert sum(b.get("approximate", False) for b in births) >= 117
    assert sum(len(b["date"]) == 4 for b in births) >= 300  # year only
    assert {"date": "1971"} in accepted["CDi.001"]["subject"]["birth_dates"]
    assert accepted["CDi.001"]["subject"]["nationalities"] == ["CD"]
    assert sum(bool(s.get("nationalities")) for s in people) >= 600


def test_regime_legal_basis_listing_date_and_provenance(
        snapshot: Snapshot, accepted: dict[str, dict[str, Any]]) -> None:
    document = accepted["CDi.001"]
    assert document["legal_basis"] == {
        "instrument": "UN Security Council resolution 1533 (2004)",
        "regime": "Democratic Republic of the Congo", "decision": "CDi.001",
        "url": un_xml.LIST_URL}
    assert document["listed_at"] == "2012-12-31T00:00:00Z"
    assert document["source"] == {"publisher": "United Nations Security Council",
                                  "record_id": "CDi.001", "url": un_xml.LIST_URL,
                                  "file": "un_sc_consolidated_2026-02-27.xml",
                                  "generated_at": "2026-02-27T00:00:09Z"}
    assert accepted["QDi.001"]["redress"] == un_xml.OMBUDSPERSON
    assert document["redress"] == un_xml.FOCAL_POINT
    regimes = Counter(d["legal_basis"]["regime"] for d in accepted.values())
    assert len(regimes) == 14 and regimes["ISIL (Da'esh) and Al-Qaida"] == 341
    assert all(d["legal_basis"]["instrument"].startswith("UN Security Council resolution")
               for d in accepted.values())



def test_the_entry_gate_is_the_un_listing_and_its_notification(
        accepted: dict[str, dict[str, Any]]) -> None:
    document = accepted["CDi.001"]
    assert document["schema"] == "interdict/entry/v2"
    assert document["decision"] == {
        "reference": "CDi.001", "date": "2012-12-31", "url": un_xml.LIST_URL,
        "authority": "United Nations Security Council, Democratic Republic of the Congo "
                     "sanctions committee"}
    assert document["notice_exemption"] == {
        "instrument": "UN Security Council resolution 1533 (2004)",
        "ground": un_xml.NOTICE_GROUND}
    assert "notice" not in document
    assert "CDi.001" in document["assessment"] and "import of" in document["assessment"]


def test_measures_follow_the_regime(accepted: dict[str, dict[str, Any]]) -> None:
    def measures(reference: str) -> set[str]:
        return {m["type"] for m in accepted[reference]["measures"]}

    person, entity = measures("CDi.001"), measures("CDe.001")
    assert person == {"travel.air", "travel.rail", "travel.sea", "credit.loan", "credit.card"}
    assert entity == {"credit.loan", "credit.card", "permit.business"}
    iraq = [r for r, d in accepted.items() if d["legal_basis"]["regime"] == "Iraq"]
    assert iraq and all(not any(m.startswith("travel.") for m in measures(r)) for r in iraq)
    guinea_bissau = [r for r, d in accepted.items()
                     if d["legal_basis"]["regime"] == "Guinea-Bissau"]
    assert guinea_bissau and all(measures(r) == {"travel.air", "travel.rail", "travel.sea"}
                                 for r in guinea_bissau)


@pytest.mark.parametrize(("data", "code"), [
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><CONSOLIDATED_LIST/>',
     "import.xml_dtd"),
    (b"<CONSOLIDATED_LIST><INDIVIDUALS>", "import.xml"),
    (b"<sdnList/>", "import.not_un_list"),
    (b'<CONSOLIDATED_LIST dateGenerated="yesterday"/>', "import.no_generation_date"),
])
def test_files_that_are_not_a_un_list_are_refused(data: bytes, code: str) -> None:
    with pytest.raises(DocumentError) as caught:
        un_xml.parse(data, "bad.xml", "0" * 64)
    assert caught.value.code == code and "bad.xml" in caught.value.message


def test_a_record_without_a_listing_date_is_reported_not_published() -> None:
    data = (b'<CONSOLIDATED_LIST dateGenerated="2026-02-27T00:00:00Z"><INDIVIDUALS><INDIVIDUAL>'
            b"<FIRST_NAME>A</FIRST_NAME><UN_LIST_TYPE>DRC</UN_LIST_TYPE>"
            b"<REFERENCE_NUMBER>CDi.999</REFERENCE_NUMBER><LISTED_ON>soon</LISTED_ON>"
            b"</INDIVIDUAL></INDIVIDUALS></CONSOLIDATED_LIST>")
    snapshot = un_xml.parse(data, "one.xml", "0" * 64)
    assert "LISTED_ON" in (snapshot.records["CDi.999"].problem or "")
