"""Step 6 of verifying a bundle: the keys, and every entry, directive and receipt.

Runs after the log itself verified (steps 1-5 in :mod:`interdict.auditlog.verify`), so the
events are what the log signed, and the documents are judged against them:

a. ``jwks.json``: each ``kid`` is its key's RFC 7638 thumbprint, and the log recorded adding
   that key for that owner (``key.added``), with the validity and status the log recorded
   (``key.retired``, ``key.revoked``);
b. each document's JWS (profile checks and signature: ``keys.jws``) under its ``kid``, by a key
   of the right kind of owner (entries: issuer, directives: engine, receipts: agency), the
   entry's issuer or the receipt's agency, usable when the log recorded the document;
c. the log recorded it: the digest of the exact line is the one its ``entry.accepted``,
   ``directive.issued`` or ``receipt.recorded`` event names, and the event's identifiers
   match the document's (for a directive/v2, the policy digest it carries is the one its
   ``directive.issued`` event names; a directive/v1 carries none);
d. references: a directive's ``entry_ref`` names an entry the log accepted, present here; a
   receipt names a directive the log issued, present here, for the receipt's agency.
   Receipts v1 and v2 are read alike; a v2 receipt's flag code (``flagged``) is the one its
   ``receipt.recorded`` event carries (``flag``).

Documents the log records but the bundle lacks are reported, not failed: the log still
proves what happened to them. Those the log records erasing (``document.erased``) are
reported as erased; the others as withheld. ``erased.jsonl`` (optional) lists erased
documents by kind, digest and the seq of their erasure event: each line must be an erasure
the log records (``erased.not_logged``). A document the log records erasing must not be in
the bundle (``erased.present``): the erasure the log claims did not happen. A directive whose
entry, or a receipt whose directive, was erased still verifies: what it names is in the log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import orjson

from interdict import progress
from interdict.auditlog import bundle
from interdict.auditlog.bundle import Report
from interdict.errors import VerificationError
from interdict.keys import jws
from interdict.keys.jwk import thumbprint, unb64u
from interdict.keys.truststore import OWNER_KINDS

_ACTIONS = frozenset({b"entry.accepted", b"directive.issued", b"receipt.recorded", b"key.added",
                      b"key.retired", b"key.revoked", b"document.erased"})
_PREFIX = b'{"action":"'
# The refs each kind of event is checked by; the rest is dropped, so a long log fits in memory.
_KEEP = {"entry.accepted": ("digest", "issuer", "entry_id", "revision", "kid"),
         "directive.issued": ("digest", "directive_id", "agency", "kid", "entry_digest",
                              "policy"),
         "receipt.recorded": ("digest", "directive_id", "flag"),
         "document.erased": ("digest", "kind")}
_TYP = {"entry": jws.TYP_ENTRY, "directive": jws.TYP_DIRECTIVE, "receipt": jws.TYP_RECEIPT}


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class Logged:
    """One event of the log, as much as the document checks need."""

    seq: int
    at: datetime
    refs: dict[str, Any]


@dataclass
class _KeyRecord:
    added: Logged
    retired: Logged | None = None
    revoked: Logged | None = None


@dataclass
class LogIndex:
    accepted: dict[str, Logged] = field(default_factory=dict)  # entry digest ->
    accepted_ids: dict[tuple[Any, Any, Any], str] = field(default_factory=dict)  # -> digest
    issued: dict[str, Logged] = field(default_factory=dict)  # directive_id ->
    recorded: dict[str, list[Logged]] = field(default_factory=dict)  # directive_id ->
    keys: dict[str, _KeyRecord] = field(default_factory=dict)  # kid ->
    erased: dict[tuple[str, str], Logged] = field(default_factory=dict)  # (kind, digest) ->


def index_log(path: Path, report: Report) -> LogIndex:
    """The events documents are checked against; other events are skipped unparsed."""
    index = LogIndex()
    seq = 0
    for lines in bundle.LineReader(path).blocks():
        for line in lines:
            if line.startswith(_PREFIX):
                end = line.find(b'"', len(_PREFIX))
                if line[len(_PREFIX):end] in _ACTIONS:
                    _add(index, _event(line, seq, report))
            else:
                _add(index, _event(line, seq, report))
            seq += 1
    return index


def _event(line: bytes, seq: int, report: Report) -> tuple[str, Logged]:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        report.fail("event.malformed", f"not JSON ({exc})", file=bundle.EVENTS, line=seq + 1,
                    seq=seq)
    at = _time(event.get("at")) if isinstance(event, dict) else None
    refs = event.get("refs") if isinstance(event, dict) else None
    if at is None or not isinstance(refs, dict) or not isinstance(event.get("action"), str):
        report.fail("event.malformed", "an event needs action, an aware 'at' timestamp and "
                    "refs", file=bundle.EVENTS, line=seq + 1, seq=seq)
    action = event["action"]
    keep = _KEEP.get(action)
    if keep is not None:
        refs = {name: refs[name] for name in keep if name in refs}
    return action, Logged(seq, at, refs)


def _add(index: LogIndex, item: tuple[str, Logged]) -> None:
    action, logged = item
    refs = logged.refs
    if action == "entry.accepted":
        index.accepted[refs.get("digest", "")] = logged
        index.accepted_ids[(refs.get("issuer"), refs.get("entry_id"), refs.get("revision"))] = \
            refs.get("digest", "")
    elif action == "directive.issued":
        index.issued[refs.get("directive_id", "")] = logged
    elif action == "receipt.recorded":
        index.recorded.setdefault(refs.get("directive_id", ""), []).append(logged)
    elif action == "document.erased":
        index.erased.setdefault((str(refs.get("kind")), str(refs.get("digest"))), logged)
    elif action == "key.added":
        index.keys.setdefault(refs.get("kid", ""), _KeyRecord(logged))
    elif action in ("key.retired", "key.revoked") and refs.get("kid") in index.keys:
        record = index.keys[refs["kid"]]
        if action == "key.retired":
            record.retired = logged
        else:
            record.revoked = logged


# --------------------------------------------------------------------------------------------
# a. Keys
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleKey:
    kid: str
    owner_kind: str
    owner_id: str
    public_key: bytes
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None  # when the log recorded the revocation


def _jwks_fail(report: Report, message: str, code: str = "jwks.malformed") -> NoReturn:
    report.fail(code, message, file=bundle.JWKS)


def load_keys(path: Path, index: LogIndex, report: Report) -> dict[str, BundleKey]:
    try:
        document = jws.strict_json(path.read_bytes())
    except VerificationError as exc:
        _jwks_fail(report, f"not a JSON document: {exc.message}")
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list):
        _jwks_fail(report, "a JWK set is an object with a 'keys' list (RFC 7517 section 5)")
    keys: dict[str, BundleKey] = {}
    for i, member in enumerate(members):
        key = _key(member, i, index, report)
        if key.kid in keys:
            _jwks_fail(report, f"key {key.kid} is listed twice", "jwks.duplicate")
        keys[key.kid] = key
        report.count("keys: thumbprint, owner and validity as logged")
    return keys


def _key(member: Any, i: int, index: LogIndex, report: Report) -> BundleKey:
    where = f"key {i + 1}"
    if not isinstance(member, dict):
        _jwks_fail(report, f"{where} is not an object")
    owner = member.get("owner")
    if (member.get("kty"), member.get("crv")) != ("OKP", "Ed25519") \
            or not isinstance(owner, dict) or not isinstance(member.get("kid"), str):
        _jwks_fail(report, f"{where} is not an Ed25519 JWK with kid and owner")
    kid = member["kid"]
    try:
        raw = unb64u(str(member.get("x", "")))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        _jwks_fail(report, f"key {kid}: 'x' is not a base64url 32-byte Ed25519 key")
    if thumbprint(raw) != kid:
        _jwks_fail(report, f"key {kid} is not the thumbprint of its public key (RFC 7638): the "
                   f"key was swapped, its thumbprint is {thumbprint(raw)}", "jwks.kid_mismatch")
    kind, owner_id = owner.get("kind"), owner.get("id")
    valid_from, valid_until = _time(member.get("valid_from")), _time(member.get("valid_until"))
    if kind not in OWNER_KINDS or not isinstance(owner_id, str) or valid_from is None \
            or (member.get("valid_until") is not None and valid_until is None):
        _jwks_fail(report, f"key {kid}: owner kind must be one of {', '.join(OWNER_KINDS)} "
                   "with an id, and validity ISO 8601 timestamps with an offset")
    record = index.keys.get(kid)
    if record is None:
        _jwks_fail(report, f"key {kid} ({kind} {owner_id}): the log never recorded adding it",
                   "key.not_logged")
    logged_owner = (record.added.refs.get("owner_kind"), record.added.refs.get("owner"))
    if logged_owner != (kind, owner_id):
        _jwks_fail(report, f"key {kid} is listed for {kind} {owner_id}, but the log (seq "
                   f"{record.added.seq}) added it for {logged_owner[0]} {logged_owner[1]}",
                   "key.owner_mismatch")
    _check_validity(member, kid, record, valid_from, valid_until, report)
    revoked_at = record.revoked.at if record.revoked else None
    return BundleKey(kid, kind, owner_id, raw, valid_from, valid_until, revoked_at)


def _check_validity(member: dict[str, Any], kid: str, record: _KeyRecord,
                    valid_from: datetime, valid_until: datetime | None,
                    report: Report) -> None:
    logged_from = _time(record.added.refs.get("valid_from"))
    logged_until = _time(record.retired.refs.get("valid_until")) if record.retired else None
    if logged_from is not None and logged_from != valid_from:
        _jwks_fail(report, f"key {kid} is listed valid from {member.get('valid_from')}, the "
                   f"log says {record.added.refs.get('valid_from')}", "key.validity_mismatch")
    if valid_until != logged_until:
        _jwks_fail(report, f"key {kid} is listed valid until {member.get('valid_until')}, the "
                   f"log says {logged_until.isoformat() if logged_until else 'no end'}",
                   "key.validity_mismatch")
    if (member.get("status") == "revoked") != (record.revoked is not None):
        said = f"revoked at seq {record.revoked.seq}" if record.revoked else "never revoked"
        _jwks_fail(report, f"key {kid} is listed {member.get('status')!r}, the log says "
                   f"{said}", "key.status_mismatch")


# --------------------------------------------------------------------------------------------
# b-d. Documents
# --------------------------------------------------------------------------------------------


@dataclass
class _Checked:
    """One document line that passed (b): its parts, signer and digest."""

    line: int
    kid: str
    key: BundleKey
    payload: dict[str, Any]
    digest: str


@dataclass
class _State:
    report: Report
    index: LogIndex
    keys: dict[str, BundleKey]
    entries: dict[str, tuple[Any, Any, Any]] = field(default_factory=dict)  # digest -> id
    directives: dict[str, str] = field(default_factory=dict)  # directive_id -> agency
    receipts: set[str] = field(default_factory=set)  # digests
    late: Counter[str] = field(default_factory=Counter)  # recorded after the key's end

    def fail(self, code: str, message: str, file: str, line: int) -> NoReturn:
        self.report.fail(code, message, file=file, line=line)


def _lines(path: Path, phase: str) -> Iterator[tuple[int, bytes]]:
    """Numbered lines (from 1), read a block at a time, with a progress bar on long files.
    A last line without its newline is yielded too: its token will not parse, and says so."""
    reader = bundle.LineReader(path)
    total = sum(block.count(b"\n") for block in _blocks(path))
    n = 0
    with progress.phase(phase, total if total >= 10_000 else 0) as bar:
        for lines in reader.blocks():
            yield from enumerate(lines, n + 1)
            n += len(lines)
            bar.advance(len(lines))
    if reader.unterminated:
        yield n + 1, reader.unterminated


def _blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(1 << 24):
            yield block


def _payload(parsed: jws.CompactJWS) -> dict[str, Any]:
    # interdict signs canonical JSON; when re-encoding gives back the exact bytes there can be
    # no duplicate key or other ambiguity, so orjson's answer is the strict parser's, at a
    # fifth of the cost. Anything else goes through the strict parser.
    try:
        document = orjson.loads(parsed.payload)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict) and jws.canonical_json(document) == parsed.payload:
        return document
    return jws.parse_payload(parsed)


def _verified(state: _State, kind: str, file: str, n: int, token: bytes) -> _Checked:
    try:
        parsed = jws.parse(token, _TYP[kind])
    except VerificationError as exc:
        state.fail(exc.code, f"{kind}: {exc.message}", file, n)
    key = state.keys.get(parsed.kid)
    if key is None:
        state.fail("key.unknown", f"{kind} signed by key {parsed.kid}, which jwks.json does "
                   "not list", file, n)
    if key.owner_kind != bundle.SIGNER_KIND[kind]:
        state.fail("key.wrong_owner", f"{kind} signed by {key.owner_kind} {key.owner_id}'s key "
                   f"{key.kid}; only {bundle.SIGNER_KIND[kind]} keys sign {kind}s", file, n)
    try:
        jws.verify_signature(parsed, key.public_key)
        payload = _payload(parsed)
    except VerificationError as exc:
        state.fail(exc.code, f"{kind}: {exc.message}", file, n)
    digest = jws.digest(token)
    erased = state.index.erased.get((kind, digest))
    if erased is not None:
        state.fail("erased.present", f"the log records erasing this {kind} ({digest}) at seq "
                   f"{erased.seq}, yet the bundle holds it: the erasure did not happen", file, n)
    return _Checked(n, parsed.kid, key, payload, digest)


def _usable(state: _State, kind: str, doc: _Checked, at: datetime, file: str,
            strict_end: bool) -> None:
    """The key could vouch for the document when the log recorded it. Entries and receipts
    are signed by others some time before interdict records them, and the bundle does not
    carry that time, so for them a key that ended in between is reported, not failed."""
    key = doc.key
    if at < key.valid_from:
        state.fail("key.outside_validity", f"{kind} recorded at {at.isoformat()}, before key "
                   f"{key.kid} was valid ({key.valid_from.isoformat()})", file, doc.line)
    if key.revoked_at is not None and at >= key.revoked_at:
        state.fail("key.revoked", f"{kind} recorded at {at.isoformat()}, after key {key.kid} "
                   f"was revoked ({key.revoked_at.isoformat()})", file, doc.line)
    if key.valid_until is not None and at > key.valid_until:
        if strict_end:
            state.fail("key.outside_validity", f"{kind} recorded at {at.isoformat()}, after "
                       f"key {key.kid} expired ({key.valid_until.isoformat()})", file, doc.line)
        state.late[kind] += 1


def _field(state: _State, doc: _Checked, name: str, kind: str, file: str) -> Any:
    value = doc.payload.get(name)
    if value is None:
        state.fail("document.malformed", f"{kind} has no {name!r}", file, doc.line)
    return value


def _refs_match(state: _State, kind: str, doc: _Checked, logged: Logged, file: str,
                expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        if logged.refs.get(name) != value:
            state.fail(f"{kind}.ref_mismatch", f"the log's event (seq {logged.seq}) says "
                       f"{name} {logged.refs.get(name)!r}, the {kind} says {value!r}", file,
                       doc.line)


def _entries(state: _State, path: Path) -> None:
    file = bundle.ENTRIES
    for n, token in _lines(path, "entries"):
        doc = _verified(state, "entry", file, n, token)
        identity = (_field(state, doc, "issuer", "entry", file),
                    _field(state, doc, "entry_id", "entry", file),
                    _field(state, doc, "revision", "entry", file))
        if doc.key.owner_id != identity[0]:
            state.fail("key.wrong_owner", f"entry of issuer {identity[0]} signed by "
                       f"{doc.key.owner_id}'s key {doc.kid}", file, n)
        logged = state.index.accepted.get(doc.digest)
        if logged is None:
            if identity in state.index.accepted_ids:
                state.fail("entry.digest_mismatch", f"the log accepted {identity[1]} revision "
                           f"{identity[2]} with digest {state.index.accepted_ids[identity]}, "
                           f"this line's is {doc.digest}", file, n)
            state.fail("entry.not_logged", f"the log never accepted {identity[1]} revision "
                       f"{identity[2]} ({doc.digest})", file, n)
        _refs_match(state, "entry", doc, logged, file, {
            "issuer": identity[0], "entry_id": identity[1], "revision": identity[2],
            "kid": doc.kid})
        _usable(state, "entry", doc, logged.at, file, strict_end=False)
        if doc.digest in state.entries:
            state.fail("document.duplicate", f"entry {doc.digest} is listed twice", file, n)
        state.entries[doc.digest] = identity
        state.report.count("entries: signature, signer, log record")


def _directives(state: _State, path: Path) -> None:
    file = bundle.DIRECTIVES
    for n, token in _lines(path, "directives"):
        doc = _verified(state, "directive", file, n, token)
        directive_id = _field(state, doc, "directive_id", "directive", file)
        agency = _field(state, doc, "agency", "directive", file)
        ref = _field(state, doc, "entry_ref", "directive", file)
        if not isinstance(ref, dict) or not isinstance(ref.get("digest"), str):
            state.fail("document.malformed", "entry_ref has no digest", file, n)
        logged = state.index.issued.get(directive_id)
        if logged is None:
            state.fail("directive.not_logged", f"the log never issued {directive_id}", file, n)
        if logged.refs.get("digest") != doc.digest:
            state.fail("directive.digest_mismatch", f"the log issued {directive_id} with digest "
                       f"{logged.refs.get('digest')} (seq {logged.seq}), this line's is "
                       f"{doc.digest}", file, n)
        expected = {"agency": agency, "kid": doc.kid, "entry_digest": ref["digest"]}
        if "policy" in doc.payload:  # directive/v2 (v1 carries no policy digest)
            expected["policy"] = doc.payload["policy"]
        _refs_match(state, "directive", doc, logged, file, expected)
        accepted = state.index.accepted.get(ref["digest"])
        if accepted is None:
            state.fail("directive.entry_not_logged", f"{directive_id} names entry "
                       f"{ref['digest']}, which the log never accepted", file, n)
        _refs_match(state, "directive", doc, accepted, file, {
            "issuer": ref.get("issuer"), "entry_id": ref.get("entry_id"),
            "revision": ref.get("revision")})
        if ref["digest"] not in state.entries and ("entry", ref["digest"]) not in \
                state.index.erased:
            state.fail("directive.entry_missing", f"{directive_id} names entry {ref['digest']}, "
                       "which is not in entries.jsonl", file, n)
        _usable(state, "directive", doc, logged.at, file, strict_end=True)
        if directive_id in state.directives:
            state.fail("document.duplicate", f"{directive_id} is listed twice", file, n)
        state.directives[directive_id] = agency
        state.report.count("directives: signature, signer, log record, accepted entry")


def _receipts(state: _State, path: Path) -> None:
    file = bundle.RECEIPTS
    for n, token in _lines(path, "receipts"):
        doc = _verified(state, "receipt", file, n, token)
        directive_id = _field(state, doc, "directive_id", "receipt", file)
        agency = _field(state, doc, "agency", "receipt", file)
        if doc.key.owner_id != agency:
            state.fail("key.wrong_owner", f"receipt of agency {agency} signed by "
                       f"{doc.key.owner_id}'s key {doc.kid}", file, n)
        if directive_id not in state.index.issued:
            state.fail("receipt.directive_not_logged", f"receipt for {directive_id}, which the "
                       "log never issued", file, n)
        issued = state.index.issued[directive_id]
        sent_to = state.directives.get(directive_id)
        if sent_to is None:
            if ("directive", issued.refs.get("digest")) not in state.index.erased:
                state.fail("receipt.directive_missing", f"receipt for {directive_id}, which is "
                           "not in directives.jsonl", file, n)
            sent_to = issued.refs.get("agency")
        if sent_to != agency:
            state.fail("receipt.wrong_agency", f"receipt by {agency} for {directive_id}, which "
                       f"was issued to {sent_to}", file, n)
        records = state.index.recorded.get(directive_id, [])
        logged = next((r for r in records if r.refs.get("digest") == doc.digest), None)
        if logged is None:
            code = "receipt.digest_mismatch" if records else "receipt.not_logged"
            state.fail(code, f"the log recorded no receipt for {directive_id} with digest "
                       f"{doc.digest} ({len(records)} other receipt(s) recorded)", file, n)
        flag = doc.payload.get("flag") if doc.payload.get("status") == "flagged" else None
        _refs_match(state, "receipt", doc, logged, file,
                    {"flag": flag.get("code") if isinstance(flag, dict) else None})
        _usable(state, "receipt", doc, logged.at, file, strict_end=False)
        state.receipts.add(doc.digest)
        state.report.count("receipts: signature, signer, log record, issued directive")


def check(directory: Path, report: Report) -> None:
    """Steps a-d over the bundle in ``directory``; the log itself must have verified."""
    index = index_log(directory / bundle.EVENTS, report)
    state = _State(report, index, load_keys(directory / bundle.JWKS, index, report))
    if (directory / bundle.ERASED).is_file():  # claims first: nothing below relies on them
        _erased_listing(state, directory / bundle.ERASED)
    _entries(state, directory / bundle.ENTRIES)
    _directives(state, directory / bundle.DIRECTIVES)
    _receipts(state, directory / bundle.RECEIPTS)
    _report_gaps(state)


def _erased_listing(state: _State, path: Path) -> None:
    """Each line names an erasure the log records: kind, digest, and the event's seq."""
    file, seen = bundle.ERASED, set()
    for n, line in _lines(path, "erased"):
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            item = None
        if not isinstance(item, dict) or not all(
                isinstance(item.get(k), t) for k, t in (("kind", str), ("digest", str),
                                                        ("seq", int))):
            state.fail("document.malformed", "an erased.jsonl line is an object with kind, "
                       "digest and seq", file, n)
        key = (item["kind"], item["digest"])
        logged = state.index.erased.get(key)
        if logged is None or logged.seq != item["seq"]:
            state.fail("erased.not_logged", f"the bundle lists {item['kind']} {item['digest']} "
                       f"as erased at seq {item['seq']}, but the log records no such erasure",
                       file, n)
        if key in seen:
            state.fail("document.duplicate", f"{item['digest']} is listed as erased twice",
                       file, n)
        seen.add(key)
        state.report.count("erased: listed, the log records the erasure")


def _report_gaps(state: _State) -> None:
    index, report = state.index, state.report
    issued = {logged.refs.get("digest") for logged in index.issued.values()}
    recorded = {r.refs.get("digest") for rs in index.recorded.values() for r in rs}
    present_directives = {index.issued[d].refs.get("digest") for d in state.directives}
    absent: dict[str, set[Any]] = {"entry": set(index.accepted) - set(state.entries),
                                   "directive": issued - present_directives,
                                   "receipt": recorded - state.receipts}
    erased = {kind: {d for d in digests if (kind, d) in index.erased}
              for kind, digests in absent.items()}
    for kind, digests in erased.items():
        if digests:
            report.count(f"erased after retention ({kind}), as the log records", len(digests))
    withheld = {kind: len(digests - erased[kind]) for kind, digests in absent.items()}
    if any(withheld.values()):
        report.warnings.append(
            "the log records " + ", ".join(f"{n} {k}(s)" for k, n in withheld.items() if n)
            + " that the bundle neither holds nor lists as erased (withheld)")
    for kind, n in sorted(state.late.items()):
        report.warnings.append(f"{n} {kind}(s) recorded after their key's validity ended: "
                               "signed before? the bundle carries no signing time")
