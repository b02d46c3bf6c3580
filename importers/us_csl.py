"""The US Consolidated Screening List (trade.gov, CSV) as a ``Snapshot``.

One record per row. The record id is ``<list>-<entity_number>`` (OFAC's permanent UID) where
the row has one, else ``<list>-<12 hex digits>`` of SHA-256 over the name and addresses: the
export lists (DPL, EL, DTC, ...) give no id, and a row whose name or addresses change is then,
honestly, a different listing. The measures follow the list (docs/importing.md): blocking
(SDN) -> ``credit.*`` and ``permit.business``; sectoral and financial lists -> ``credit.loan``;
export lists -> ``permit.business``; debarment and nonproliferation -> also
``procurement.contract``.

The CSV carries no generation date. Unless ``--generated-at`` gives it, the snapshot is dated by
its newest ``start_date``: the list cannot be older than its newest listing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from interdict.errors import DocumentError
from interdict.importers.countries import CODES, country_code
from interdict.importers.snapshot import Record, Snapshot, day
from interdict.importers.text import clean, limit, partial_date, script_of

SOURCE = "us-csl"
PUBLISHER = "US Consolidated Screening List (trade.gov)"
LIST_NAME = "US Consolidated Screening List"
REQUIRED_COLUMNS = ("source", "name")
# The entry gate's notice: a listing published in the Federal Register is notice in law
# (44 U.S.C. 1507); whoever screens against the list does not notify the subject itself.
NOTICE_INSTRUMENT = "Federal Register Act, 44 U.S.C. 1507"
NOTICE_GROUND = ("The listing agency publishes the listing, with its reasons and how to seek "
                 "removal, in the Federal Register, which is notice to the listed party in law; "
                 "an institution applying the Consolidated Screening List does not notify the "
                 "subject itself.")


@dataclass(frozen=True)
class UsList:
    measures: tuple[str, ...]
    redress: dict[str, str]


_OFAC = {"authority": "US Department of the Treasury, Office of Foreign Assets Control",
         "url": "https://ofac.treasury.gov/"}
_BIS = {"authority": "US Department of Commerce, Bureau of Industry and Security",
        "url": "https://www.bis.gov/"}
_DDTC = {"authority": "US Department of State, Directorate of Defense Trade Controls",
         "url": "https://www.pmddtc.state.gov/"}
_ISN = {"authority": "US Department of State, Bureau of International Security and "
                     "Nonproliferation", "url": "https://www.state.gov/"}
BLOCKING = ("credit.loan", "credit.card", "permit.business")
LISTS = {
    "SDN": UsList(BLOCKING, _OFAC),
    "SSI": UsList(("credit.loan",), _OFAC),
    "PLC": UsList(("credit.loan",), _OFAC),
    "CAP": UsList(("credit.loan",), _OFAC),
    "FSE": UsList(("credit.loan",), _OFAC),
    "NS-MBS": UsList(("credit.loan",), _OFAC),
    "EL": UsList(("permit.business",), _BIS),
    "UVL": UsList(("permit.business",), _BIS),
    "DPL": UsList(("permit.business",), _BIS),
    "MEU": UsList(("permit.business",), _BIS),
    "DTC": UsList(("permit.business", "procurement.contract"), _DDTC),
    "ISN": UsList(("permit.business", "procurement.contract"), _ISN),
}
DEFAULT_LIST = UsList(("permit.business",), {"authority": "The US agency that keeps the list",
                                             "url": "https://www.trade.gov/"})
SUBJECT_TYPES = {"individual": "person", "entity": "organization", "vessel": "vessel",
                 "aircraft": "aircraft"}
# Words that mark a name as an organisation's, for the rows that give no type (the export
# lists). A heuristic, so it is kept small and documented; everything else is a person.
ORGANISATION_WORDS = frozenset({"ltd", "limited", "inc", "corp", "corporation", "co", "company",
    "llc", "gmbh", "ag", "sa", "group", "institute", "university", "regiment", "airlines",
    "aviation", "aerospace", "logistics", "trading", "trade", "technik", "technology",
    "technologies", "engineering", "finance", "international", "contracting", "shipping",
    "spedition", "cargo", "industrial", "industries", "industry", "center", "centre", "solutions",
    "plan", "holdings", "bank", "factory", "enterprise", "enterprises", "organization",
    "organisation", "ministry", "agency", "services"})
# Identifier types (the last part of an ``ids`` item) -> a scheme. Other types that are
# sanction details, not identifiers, go to the legal basis' provision instead.
ID_SCHEMES = {"tax id no.": "tax-id", "nit #": "tax-id", "ruc #": "tax-id",
              "registration id": "company-register", "company number": "company-register",
              "commercial registry number": "company-register",
              "matricula mercantil no": "company-register",
              "government gazette number": "government-gazette", "passport": "passport",
              "swift/bic": "swift-bic", "vessel registration identification": "imo",
              "website": "website", "email address": "email"}
PROVISION_TYPES = ("directive determination", "secondary sanctions", "additional sanctions",
                   "former vessel flag")


def read(path: Path, *, generated_at: datetime | None = None) -> Snapshot:
    """Raises:
    DocumentError: ``import.csv`` or ``import.no_generation_date``.
    """
    data = path.read_bytes()
    return parse(data, *Snapshot.file_facts(path, data), generated_at=generated_at)


def parse(data: bytes, file: str, sha256: str, *,
          generated_at: datetime | None = None) -> Snapshot:
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DocumentError(f"{file}: not a UTF-8 CSV file: {exc}", code="import.csv") from None
    missing = [c for c in REQUIRED_COLUMNS if not rows or c not in rows[0]]
    if missing:
        raise DocumentError(f"{file}: no column {', '.join(missing)}: not a Consolidated "
                            "Screening List export", code="import.csv")
    generated = generated_at or _newest_listing(rows, file)
    snapshot = Snapshot(SOURCE, file, sha256, generated, PUBLISHER, LIST_NAME)
    for line, row in enumerate(rows, start=2):
        record = _record({k: clean(v) for k, v in row.items() if k}, generated, line)
        record_id, n = record.record_id, 1
        while record_id in snapshot.records:  # the same name and addresses twice in one list
            n += 1
            record_id = f"{record.record_id}-{n}"
        snapshot.records[record_id] = Record(record_id, {
            **record.content, "source": {**record.content["source"], "record_id": record_id}},
            record.ends_at, record.problem, record.gate)
    return snapshot


def _newest_listing(rows: list[dict[str, str]], file: str) -> datetime:
    dates = [d for d in (partial_date(r.get("start_date") or "") for r in rows)
             if d and len(d) == 10]
    if not dates:
        raise DocumentError(f"{file}: no date says when this list was generated; give "
                            "--generated-at", code="import.no_generation_date")
    return datetime.fromisoformat(max(dates)).replace(tzinfo=UTC)


def list_code(source: str) -> str:
    """``Specially Designated Nationals (SDN) - Treasury Department`` -> ``SDN``."""
    found = re.search(r"\(([A-Za-z-]{2,12})\)", source)
    if found:
        return found.group(1).upper()
    return re.sub(r"[^A-Za-z0-9]+", "-", source).strip("-").upper()[:24] or "LIST"


def _record_id(row: dict[str, str], code: str) -> str:
    if row.get("entity_number"):
        return f"{code}-{re.sub(r'[^A-Za-z0-9._-]', '', row['entity_number'])}"
    material = "\x1f".join((row.get("name", "").casefold(), row.get("addresses", "").casefold()))
    return f"{code}-{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def _record(row: dict[str, str], generated: datetime, line: int) -> Record:
    source = row.get("source") or "unnamed list"
    code = list_code(source)
    kind = LISTS.get(code, DEFAULT_LIST)
    record_id = _record_id(row, code)
    identifiers, provisions = _ids(row.get("ids", ""))
    content: dict[str, Any] = {
        "subject": _subject(row, identifiers),
        "measures": [{"type": t} for t in kind.measures],
        "legal_basis": _legal_basis(row, source, provisions),
        "reason": limit(_reason(row, source), 4000),
        "listed_at": day(_start(row) or generated.date().isoformat()),
        "redress": kind.redress,
        "source": {"publisher": PUBLISHER, "record_id": record_id},
    }
    if row.get("source_list_url", "").startswith(("http://", "https://")):
        content["source"]["url"] = row["source_list_url"]
    end = partial_date(row.get("end_date", ""))
    ends_at = datetime.fromisoformat(end).replace(tzinfo=UTC) if end and len(end) == 10 else None
    problem = None if row.get("name") else f"row {line} has no name"
    decision = {"reference": limit(row.get("federal_register_notice") or record_id, 500),
                "authority": kind.redress["authority"], "date": content["listed_at"][:10]}
    return Record(record_id, content, ends_at, problem, gate={
        "decision": decision,
        "notice_exemption": {"instrument": NOTICE_INSTRUMENT, "ground": NOTICE_GROUND}})


def _start(row: dict[str, str]) -> str | None:
    start = partial_date(row.get("start_date", ""))
    return start if start and len(start) == 10 else None


def _subject(row: dict[str, str], identifiers: list[dict[str, str]]) -> dict[str, Any]:
    name = row.get("name", "")
    names = [_name(name, "primary")] if name else []
    names += [_name(alias, "alias") for alias in _split(row.get("alt_names", ""))
              if alias != name]
    subject: dict[str, Any] = {"type": _type(row), "names": list(
        {(n["value"], n["kind"]): n for n in names}.values())[:500]}
    extra = {"identifiers": identifiers[:200],
             "birth_dates": _birth_dates(row.get("dates_of_birth", "")),
             "nationalities": _nationalities(row), "addresses": _addresses(row)}
    subject.update({k: v for k, v in extra.items() if v})
    return subject


def _name(value: str, kind: str) -> dict[str, str]:
    name = {"value": limit(value, 500), "kind": kind}
    script = script_of(value)
    if script:
        name["script"] = script
    return name


def _split(text: str) -> list[str]:
    return [clean(part) for part in text.split(";") if clean(part)]


def _type(row: dict[str, str]) -> str:
    given = SUBJECT_TYPES.get(row.get("type", "").lower())
    if given:
        return given
    words = re.findall(r"[a-z]+", row.get("name", "").lower())
    if len(words) < 2 or any(w in ORGANISATION_WORDS for w in words) or re.search(
            r"\d", row.get("name", "")):
        return "organization"
    return "person"


def _birth_dates(text: str) -> list[dict[str, str]]:
    dates = (partial_date(part) for part in _split(text))
    return [{"date": d} for d in dict.fromkeys(d for d in dates if d)][:50]


def _nationalities(row: dict[str, str]) -> list[str]:
    codes = [country_code(c) for field in ("citizenships", "nationalities")
             for c in _split(row.get(field, ""))]
    if row.get("type", "").lower() == "vessel":
        codes.append(country_code(row.get("vessel_flag")))
    return list(dict.fromkeys(c for c in codes if c))[:20]


def _addresses(row: dict[str, str]) -> list[dict[str, str]]:
    found = []
    for text in _split(row.get("addresses", "")):
        address = {"text": limit(text, 4000)}
        last = text.rsplit(",", 1)[-1].strip()
        if last in CODES:
            address["country"] = last
        found.append(address)
    return found[:100]


def _ids(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """``"RU, 1137746390572, Registration ID; Subject to Directive 1, ..."`` -> identifiers
    (scheme, value, country) and the items that are sanction details rather than ids."""
    identifiers, provisions = [], []
    for item in _split(text):
        parts = [clean(p) for p in item.split(",")]
        kind = parts[-1].lower() if len(parts) > 1 else ""
        if any(marker in kind for marker in PROVISION_TYPES) or len(parts) < 2:
            provisions.append(item.rstrip(" -:"))
            continue
        country = parts[0] if len(parts) > 2 and parts[0] in CODES else None
        value = ", ".join(parts[1 if country else 0:-1])
        scheme = ID_SCHEMES.get(kind) or re.sub(r"[^a-z0-9]+", "-", kind).strip("-")[:64]
        if scheme == "imo":
            value = value.removeprefix("IMO ").strip()
        if not value or not scheme:
            continue
        identifier = {"scheme": scheme, "value": limit(value, 200)}
        if country:
            identifier["country"] = country
        identifiers.append(identifier)
    return identifiers, provisions


def _legal_basis(row: dict[str, str], source: str, provisions: list[str]) -> dict[str, str]:
    basis = {"instrument": limit(source, 4000)}
    programs = "; ".join(_split(row.get("programs", "")))
    basis["regime"] = programs or list_code(source)
    details = list(provisions)
    for column in ("license_requirement", "license_policy"):
        if row.get(column):
            details.append(f"{column.replace('_', ' ')}: {row[column]}")
    if details:
        basis["provision"] = limit("; ".join(details), 4000)
    if row.get("federal_register_notice"):
        basis["decision"] = limit(row["federal_register_notice"], 4000)
    url = row.get("source_information_url", "")
    if url.startswith(("http://", "https://")):
        basis["url"] = url
    return basis


def _reason(row: dict[str, str], source: str) -> str:
    reason = f"Listed on the US Consolidated Screening List: {source}"
    if row.get("programs"):
        reason += f", programs {'; '.join(_split(row['programs']))}"
    if row.get("remarks"):
        reason += f". {row['remarks']}"
    return reason
