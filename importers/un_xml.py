"""The UN Security Council Consolidated List (XML, sc-sanctions.xsd) as a ``Snapshot``.

One record per ``INDIVIDUAL`` or ``ENTITY``, keyed by its permanent ``REFERENCE_NUMBER``
(e.g. ``QDi.001``). The mapping, and why, is in docs/importing.md: names in every script the
list gives (``NAME_ORIGINAL_SCRIPT`` included), aliases with their quality, documents as
identifiers, birth dates exact, year-only, approximate or ranges, and the measures of each
sanctions regime (travel ban -> ``travel.*``, assets freeze -> ``credit.*``, and for entities
``permit.business``).

The file is untrusted input: a document type declaration (the door to entity expansion and
external entities) is refused outright, as the UN never sends one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from interdict.errors import DocumentError
from interdict.importers.countries import country_code
from interdict.importers.snapshot import TRAVEL, Record, Snapshot, day
from interdict.importers.text import clean, limit, month_of, partial_date, script_of

SOURCE = "un-sc"
PUBLISHER = "United Nations Security Council"
LIST_NAME = "United Nations Security Council Consolidated List"
LIST_URL = "https://www.un.org/securitycouncil/content/un-sc-consolidated-list"
ASSETS_PERSON = ("credit.loan", "credit.card")
ASSETS_ENTITY = ("credit.loan", "credit.card", "permit.business")
OMBUDSPERSON = {"authority": "Office of the Ombudsperson to the ISIL (Da'esh) and Al-Qaida "
                             "Sanctions Committee",
                "url": "https://www.un.org/securitycouncil/ombudsperson"}
FOCAL_POINT = {"authority": "Focal Point for De-listing, United Nations Security Council",
               "url": "https://www.un.org/securitycouncil/sanctions/delisting"}
# The entry gate's notice: the Security Council's own procedure notifies the listed party, so
# an authority implementing the list records that exemption rather than a notice of its own.
NOTICE_GROUND = ("Under the Security Council's procedure the listed individual or entity is "
                 "notified after listing through the State(s) of residence and nationality, "
                 "which the Secretariat informs, with the narrative summary of reasons and the "
                 "de-listing procedure; an authority implementing the list does not notify the "
                 "subject itself.")


@dataclass(frozen=True)
class Regime:
    name: str
    instrument: str
    travel_ban: bool = True
    assets_freeze: bool = True

    def measures(self, person: bool) -> list[dict[str, str]]:
        chosen: tuple[str, ...] = ()
        if person and self.travel_ban:
            chosen += TRAVEL
        if self.assets_freeze:
            chosen += ASSETS_PERSON if person else ASSETS_ENTITY
        return [{"type": t} for t in chosen]


def _sc(resolution: str) -> str:
    return f"UN Security Council resolution {resolution}"


# UN_LIST_TYPE -> the regime, the resolution that set up its committee, and its measures.
REGIMES = {
    "Al-Qaida": Regime("ISIL (Da'esh) and Al-Qaida",
                       "UN Security Council resolutions 1267 (1999), 1989 (2011) and 2253 (2015)"),
    "Taliban": Regime("Taliban", _sc("1988 (2011)")),
    "DPRK": Regime("Democratic People's Republic of Korea", _sc("1718 (2006)")),
    "Iran": Regime("Iran", _sc("1737 (2006)")),
    "Iraq": Regime("Iraq", _sc("1518 (2003)"), travel_ban=False),
    "DRC": Regime("Democratic Republic of the Congo", _sc("1533 (2004)")),
    "Libya": Regime("Libya", _sc("1970 (2011)")),
    "Somalia": Regime("Al-Shabaab", _sc("2713 (2023)")),
    "CAR": Regime("Central African Republic", _sc("2127 (2013)")),
    "Haiti": Regime("Haiti", _sc("2653 (2022)")),
    "Yemen": Regime("Yemen", _sc("2140 (2014)")),
    "GB": Regime("Guinea-Bissau", _sc("2048 (2012)"), assets_freeze=False),
    "Sudan": Regime("Sudan", _sc("1591 (2005)")),
    "SouthSudan": Regime("South Sudan", _sc("2206 (2015)")),
}


def regime(code: str) -> Regime:
    """A regime the table does not know yet still imports, with both measures."""
    return REGIMES.get(code) or Regime(code or "unnamed", f"UN Security Council sanctions "
                                                          f"regime {code or '(unnamed)'}")


def read(path: Path, *, generated_at: datetime | None = None) -> Snapshot:
    """Raises:
    DocumentError: ``import.xml``, ``import.xml_dtd``, ``import.not_un_list`` or
        ``import.no_generation_date``.
    """
    data = path.read_bytes()
    return parse(data, *Snapshot.file_facts(path, data), generated_at=generated_at)


def parse(data: bytes, file: str, sha256: str, *,
          generated_at: datetime | None = None) -> Snapshot:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise DocumentError(f"{file}: has a document type declaration; the UN list has none, "
                            "and it could expand entities", code="import.xml_dtd")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DocumentError(f"{file}: not well-formed XML: {exc}", code="import.xml") from None
    if root.tag != "CONSOLIDATED_LIST":
        raise DocumentError(f"{file}: the root element is <{root.tag}>, not "
                            "<CONSOLIDATED_LIST>", code="import.not_un_list")
    generated = generated_at or _generated(root.get("dateGenerated"), file)
    snapshot = Snapshot(SOURCE, file, sha256, generated, PUBLISHER, LIST_NAME)
    for element, person in ([(e, True) for e in root.iterfind("INDIVIDUALS/INDIVIDUAL")]
                            + [(e, False) for e in root.iterfind("ENTITIES/ENTITY")]):
        record = _record(element, person)
        snapshot.records[record.record_id] = record
    return snapshot


def _generated(value: str | None, file: str) -> datetime:
    try:
        return datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        raise DocumentError(f"{file}: dateGenerated {value!r} is not a timestamp; give "
                            "--generated-at", code="import.no_generation_date") from None


def _t(element: ET.Element, path: str) -> str:
    return clean(element.findtext(path))


def _record(element: ET.Element, person: bool) -> Record:
    reference = _t(element, "REFERENCE_NUMBER") or f"DATAID-{_t(element, 'DATAID')}"
    code = _t(element, "UN_LIST_TYPE")
    chosen = regime(code)
    subject: dict[str, Any] = {"type": "person" if person else "organization",
                               "names": _names(element)}
    extra = {"identifiers": _identifiers(element), "birth_dates": _birth_dates(element),
             "nationalities": _nationalities(element), "addresses": _addresses(element)}
    subject.update({k: v for k, v in extra.items() if v})
    listed = partial_date(_t(element, "LISTED_ON"))
    content = {
        "subject": subject,
        "measures": chosen.measures(person),
        "legal_basis": {"instrument": chosen.instrument, "regime": chosen.name,
                        "decision": reference, "url": LIST_URL},
        "reason": f"Listed by the UN Security Council under the {chosen.name} sanctions "
                  f"regime, reference {reference}",
        "redress": OMBUDSPERSON if code == "Al-Qaida" else FOCAL_POINT,
        "source": {"publisher": PUBLISHER, "record_id": reference, "url": LIST_URL},
    }
    problem = None
    gate: dict[str, Any] = {"notice_exemption": {"instrument": chosen.instrument,
                                                 "ground": NOTICE_GROUND}}
    if listed is not None and len(listed) == 10:
        content["listed_at"] = day(listed)
        gate["decision"] = {"reference": reference, "date": listed, "url": LIST_URL,
                            "authority": f"United Nations Security Council, {chosen.name} "
                                         "sanctions committee"}
    else:
        problem = f"LISTED_ON {_t(element, 'LISTED_ON')!r} is not a date"
    if not subject["names"]:
        problem = "the record has no name"
    return Record(reference, content, problem=problem, gate=gate)


def _name(value: str, kind: str, quality: str | None = None) -> dict[str, str]:
    name = {"value": limit(value, 500), "kind": kind}
    script = script_of(value)
    if script:
        name["script"] = script
    if quality:
        name["quality"] = quality
    return name


def _names(element: ET.Element) -> list[dict[str, str]]:
    parts = (_t(element, p) for p in ("FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME"))
    found = []
    primary = " ".join(p for p in parts if p)
    if primary:
        found.append(_name(primary, "primary"))
    for alias in _children(element, "INDIVIDUAL_ALIAS", "ENTITY_ALIAS"):
        value = _t(alias, "ALIAS_NAME")
        quality = _t(alias, "QUALITY").lower()
        if value:
            kind = "former" if quality == "f.k.a." else "alias"
            found.append(_name(value, kind, {"good": "good", "low": "low"}.get(quality)))
    for original in element.iterfind("NAME_ORIGINAL_SCRIPT"):
        if clean(original.text):
            found.append(_name(clean(original.text), "original_script"))
    unique = {(n["value"], n["kind"]): n for n in found}
    return list(unique.values())[:500]


def _scheme(*kinds: str) -> str:
    for kind in (k.lower() for k in kinds if k):
        if "passport" in kind or "pasaporte" in kind or "passeport" in kind:
            return "passport"
        if "national" in kind or "identi" in kind:
            return "national-id"
    return "document"


def _identifiers(element: ET.Element) -> list[dict[str, str]]:
    found = []
    for document in element.iterfind("INDIVIDUAL_DOCUMENT"):
        number = _t(document, "NUMBER")
        if not number:
            continue
        kind, kind2 = _t(document, "TYPE_OF_DOCUMENT"), _t(document, "TYPE_OF_DOCUMENT2")
        country = _t(document, "ISSUING_COUNTRY") or _t(document, "COUNTRY_OF_ISSUE")
        code = country_code(country)
        notes = [kind2 or (kind if _scheme(kind) == "document" else ""),
                 f"issued {_t(document, 'DATE_OF_ISSUE')}" if _t(document, "DATE_OF_ISSUE")
                 else "", _t(document, "CITY_OF_ISSUE"), "" if code else country,
                 _t(document, "NOTE")]
        identifier = {"scheme": _scheme(kind, kind2), "value": limit(number, 200)}
        if code:
            identifier["country"] = code
        note = "; ".join(n for n in notes if n)
        if note:
            identifier["note"] = limit(note, 4000)
        found.append(identifier)
    return found[:200]


def _birth_dates(element: ET.Element) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for birth in element.iterfind("INDIVIDUAL_DATE_OF_BIRTH"):
        parsed = _birth_date(birth)
        if parsed is not None and parsed not in found:
            found.append(parsed)
    return found[:50]


def _birth_date(birth: ET.Element) -> dict[str, Any] | None:
    kind, note = _t(birth, "TYPE_OF_DATE").upper(), _t(birth, "NOTE")
    approximate = kind == "APPROXIMATELY" or note.lower().startswith("approx")
    found: dict[str, Any] | None = None
    if kind == "BETWEEN":
        start, end = partial_date(_t(birth, "FROM_YEAR")), partial_date(_t(birth, "TO_YEAR"))
        if start and end:
            found = {"date": start, "to": end}
    elif partial_date(_t(birth, "DATE")):
        found = {"date": partial_date(_t(birth, "DATE"))}
    elif partial_date(_t(birth, "YEAR")):
        year = _t(birth, "YEAR")
        month = month_of(note) if note else None  # e.g. YEAR 1958 with NOTE "Sep."
        found = {"date": f"{year}-{month:02d}" if month else year}
    elif note:
        found = _from_note(note)
    if found is not None and approximate:
        found["approximate"] = True
    return found


def _from_note(note: str) -> dict[str, Any] | None:
    """'Nov. 1973', 'August 1961', 'Between Aug. and Sep. 1977'; anything else is left out."""
    words = note.replace(",", " ").split()
    if len(words) == 2 and month_of(words[0]) and partial_date(words[1]):
        return {"date": f"{words[1]}-{month_of(words[0]):02d}"}
    if (len(words) == 5 and words[0].lower() == "between" and words[2].lower() == "and"
            and month_of(words[1]) and month_of(words[3]) and partial_date(words[4])):
        return {"date": f"{words[4]}-{month_of(words[1]):02d}",
                "to": f"{words[4]}-{month_of(words[3]):02d}"}
    return None


def _nationalities(element: ET.Element) -> list[str]:
    codes = (country_code(clean(v.text)) for v in element.iterfind("NATIONALITY/VALUE"))
    return list(dict.fromkeys(c for c in codes if c))[:20]


def _addresses(element: ET.Element) -> list[dict[str, str]]:
    found = []
    for address in _children(element, "INDIVIDUAL_ADDRESS", "ENTITY_ADDRESS"):
        country = _t(address, "COUNTRY")
        code = country_code(country)
        parts = [_t(address, "STREET"), _t(address, "STATE_PROVINCE"), _t(address, "ZIP_CODE"),
                 "" if code else country, _t(address, "NOTE")]
        entry: dict[str, str] = {}
        text = ", ".join(p for p in parts if p)
        if text:
            entry["text"] = limit(text, 4000)
        if _t(address, "CITY"):
            entry["city"] = limit(_t(address, "CITY"), 200)
        if code:
            entry["country"] = code
        if entry and entry not in found:
            found.append(entry)
    return found[:100]


def _children(element: ET.Element, *tags: str) -> list[ET.Element]:
    return [child for tag in tags for child in element.iterfind(tag)]
