"""Admission: the decision to accept or refuse one published entry. Pure; no database.

The steps, in order (each refusal names its reason code from ``entries.reasons``):

1. the JWS is well formed and its header follows the profile (``keys.jws.parse``);
2. its ``kid`` is an issuer key in the trust store, and the signature verifies under it;
3. the key was usable when the entry was published (not revoked, inside its validity window);
4. the payload is a strict JSON object that matches the entry schema it names (v1 or v2); an
   impose or amend is v2 and carries the entry gate's decision, assessment and notice or
   exemption (``entries.gate``);
5. the entry names the issuer that signed it, and its ``entry_id`` is scoped to that issuer;
6. the issuer may impose every measure; the dates are coherent and within policy; the notice
   is complete and came before the measure took effect (or an exemption applies);
7. the revision is newer than the last accepted one, and the op fits the entry's state;
8. an extension (an amend moving ``expires_at`` later) carries a new assessment and stays
   within the policy's cap on extensions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from interdict import schemas
from interdict.entries import gate
from interdict.errors import DocumentError, VerificationError
from interdict.keys import jws, offload
from interdict.keys.jwk import unb64u
from interdict.keys.truststore import TrustSnapshot

DEFAULT_MAX_DURATION = timedelta(days=5 * 366)


@dataclass(frozen=True)
class Published:
    """A row of the public database, as read."""

    seq: int
    jws: str
    published_at: datetime


@dataclass(frozen=True)
class EntryStatus:
    revision: int
    status: str  # active | revoked | expired
    # what an extension is judged against: the latest revision's expiry and assessment, and
    # the extensions since the entry's latest impose
    expires_at: datetime | None = None
    assessment: str | None = None
    extensions: int = 0


@dataclass(frozen=True)
class Accepted:
    seq: int
    issuer: str
    entry_id: str
    revision: int
    op: str
    kid: str
    digest: str
    jws: str
    document: dict[str, Any]
    effective_from: datetime
    expires_at: datetime | None
    previous: int | None  # the revision this one follows, if any
    extensions: int = 0  # extensions since the latest impose, this one included
    extension: bool = False  # this revision moves expires_at later than the previous one

    @property
    def gap(self) -> bool:
        return self.previous is not None and self.revision != self.previous + 1


@dataclass(frozen=True)
class Refused:
    seq: int
    reason: str
    detail: str
    raw: bytes


@dataclass
class Policy:
    max_duration: timedelta = DEFAULT_MAX_DURATION
    # the measure types the measure policy in force covers (accountability/policy.py);
    # None covers every type
    covered: frozenset[str] | None = None
    # the policy's longest duration per measure type, in days; ``max_duration`` applies to
    # measures it does not name
    max_days: Mapping[str, int] = field(default_factory=dict)
    # per measure type, the legal instruments that may justify it; a type not named: any
    instruments: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # per measure type, how many extensions an entry may get; a type not named: no cap
    max_extensions: Mapping[str, int] = field(default_factory=dict)

    def longest(self, measures: Sequence[Mapping[str, Any]]) -> timedelta:
        """The longest an entry with these measures may last: its strictest measure's cap."""
        return min((timedelta(days=self.max_days[m["type"]]) if m["type"] in self.max_days
                    else self.max_duration for m in measures), default=self.max_duration)

    def extension_cap(self, measures: Sequence[Mapping[str, Any]]) -> int | None:
        """The most extensions an entry with these measures may get (its strictest measure's
        cap), or None when no measure is capped."""
        caps = [self.max_extensions[m["type"]] for m in measures
                if m["type"] in self.max_extensions]
        return min(caps, default=None)


class Refusal(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Admission:
    """Admits a batch in order, remembering what it accepted so a batch can amend itself."""

    trust: TrustSnapshot
    known: Mapping[tuple[str, str], EntryStatus]
    now: datetime
    policy: Policy = field(default_factory=Policy)
    #: signatures already checked in a worker process (keys/offload.py): a hint, not a decision
    verified: offload.Verified = offload.NOTHING
    _seen: dict[tuple[str, str], EntryStatus] = field(default_factory=dict)

    def admit(self, row: Published) -> Accepted | Refused:
        try:
            accepted = self._admit(row)
        except Refusal as refusal:
            return Refused(row.seq, refusal.reason, refusal.detail,
                           row.jws.encode("utf-8", "surrogateescape"))
        key = (accepted.issuer, accepted.entry_id)
        status = "revoked" if accepted.op == "revoke" else "active"
        self._seen[key] = EntryStatus(accepted.revision, status, accepted.expires_at,
                                      gate.assessment_of(accepted.document), accepted.extensions)
        return accepted

    def _status(self, key: tuple[str, str]) -> EntryStatus | None:
        return self._seen.get(key) or self.known.get(key)

    def _admit(self, row: Published) -> Accepted:
        token, signer = self._verified(row)
        document = _payload(token)
        issuer = self._authority(document, signer)
        effective_from, expires_at = self._dates(document)
        _refuse_if(gate.notice_problem(document, effective_from, row.published_at))
        key = (issuer, document["entry_id"])
        status = self._status(key)
        previous = self._order(document, status)
        extension, extensions = self._extension(document, status, expires_at)
        return Accepted(row.seq, issuer, document["entry_id"], document["revision"],
                        document["op"], token.kid, jws.digest(row.jws), row.jws, document,
                        effective_from, expires_at, previous, extensions, extension)

    def _verified(self, row: Published) -> tuple[jws.CompactJWS, str]:
        """Steps 1-3; returns the parsed JWS and the issuer whose key signed it."""
        try:
            token = jws.parse(row.jws, jws.TYP_ENTRY)
        except VerificationError as exc:
            raise Refusal(exc.code, exc.message) from None
        info = self.trust.keys.get(token.kid)
        if info is None:
            claimed = _peek_issuer(row.jws)
            if claimed is not None and claimed not in self.trust.issuer_measures:
                raise Refusal("issuer.unknown", f"issuer {claimed!r} is not registered "
                                                f"(and key {token.kid} is unknown)")
            raise Refusal("header.kid_unknown", f"no key {token.kid} in the trust store")
        if info.owner_kind != "issuer":
            raise Refusal("signature.wrong_issuer",
                          f"key {token.kid} belongs to {info.owner_kind} {info.owner_id}, "
                          "not to an issuer")
        if not self.verified.covers(row.jws, info.public_key):
            try:
                jws.verify_signature(token, info.public_key)
            except VerificationError as exc:
                raise Refusal(exc.code, exc.message) from None
        problem = info.usable_at(row.published_at)
        if problem is not None:
            raise Refusal(problem, f"key {token.kid} of issuer {info.owner_id} is {info.status}"
                                   f" and was not usable at {row.published_at.isoformat()}")
        return token, info.owner_id

    def _authority(self, document: dict[str, Any], signer: str) -> str:
        # step 5-6 (authority part)
        issuer = document["issuer"]
        if issuer != signer:
            raise Refusal("signature.wrong_issuer",
                          f"the entry names issuer {issuer!r} but is signed by {signer!r}")
        if not document["entry_id"].startswith(issuer + "/"):
            raise Refusal("entry.issuer_mismatch",
                          f"entry_id {document['entry_id']!r} is not scoped to issuer {issuer!r}")
        allowed = self.trust.issuer_measures.get(issuer)
        if allowed is None:
            raise Refusal("issuer.unknown", f"issuer {issuer!r} is not registered")
        for index, measure in enumerate(document.get("measures", [])):
            if measure["type"] not in allowed:
                raise Refusal("issuer.measure_not_authorised",
                              f"/measures/{index}/type: issuer {issuer!r} may not impose "
                              f"{measure['type']!r} (allowed: {', '.join(sorted(allowed))})")
            if self.policy.covered is not None and measure["type"] not in self.policy.covered:
                raise Refusal("policy.measure_uncovered",
                              f"/measures/{index}/type: the measure policy in force does not "
                              f"cover {measure['type']!r}: no agency may enforce it")
            allowed_by = self.policy.instruments.get(measure["type"])
            instrument = document["legal_basis"]["instrument"]
            if allowed_by is not None and instrument not in allowed_by:
                raise Refusal("policy.instrument",
                              f"/legal_basis/instrument: {instrument!r} may not justify "
                              f"{measure['type']!r} under the measure policy in force "
                              f"(allowed: {'; '.join(sorted(allowed_by))})")
        return str(issuer)

    def _dates(self, document: dict[str, Any]) -> tuple[datetime, datetime | None]:
        effective_from = _when(document["effective_from"])
        if document["op"] == "revoke":
            return effective_from, None
        expires_at = _when(document["expires_at"])
        if expires_at <= effective_from:
            raise Refusal("dates.incoherent", f"/expires_at {document['expires_at']} is not after "
                                              f"/effective_from {document['effective_from']}")
        if expires_at <= self.now:
            raise Refusal("dates.expired", f"/expires_at {document['expires_at']} has passed")
        longest = self.policy.longest(document.get("measures", []))
        if expires_at - effective_from > longest:
            raise Refusal("policy.duration",
                          f"/expires_at: the measure lasts {(expires_at - effective_from).days} "
                          f"days; the policy allows {longest.days}")
        return effective_from, expires_at

    def _order(self, document: dict[str, Any], status: EntryStatus | None) -> int | None:
        # step 7
        revision, op, entry_id = document["revision"], document["op"], document["entry_id"]
        if status is None:
            if op != "impose":
                raise Refusal("op.unknown_entry", f"{op} of {entry_id!r}, which was never imposed")
            return None
        if revision <= status.revision:
            raise Refusal("revision.replay", f"/revision {revision} of {entry_id!r} is not newer "
                                             f"than accepted revision {status.revision}")
        if op == "impose" and status.status == "active":
            raise Refusal("op.conflict", f"{entry_id!r} is already in force; publish an amend")
        if op != "impose" and status.status != "active":
            raise Refusal("op.not_active", f"{op} of {entry_id!r}, which is {status.status}")
        return status.revision

    def _extension(self, document: dict[str, Any], status: EntryStatus | None,
                   expires_at: datetime | None) -> tuple[bool, int]:
        """Step 8: (is this an extension, the entry's extensions with this one)."""
        if document["op"] != "amend" or status is None:
            return False, 0
        if not gate.is_extension(status.expires_at, expires_at):
            return False, status.extensions
        if gate.same_statement(gate.assessment_of(document), status.assessment):
            raise Refusal("gate.extension_assessment",
                          f"/expires_at moves the end from {_iso(status.expires_at)} to "
                          f"{document['expires_at']}: an extension needs a new /assessment of "
                          f"why the measure is still necessary, not revision "
                          f"{status.revision}'s again")
        count = status.extensions + 1
        cap = self.policy.extension_cap(document["measures"])
        if cap is not None and count > cap:
            raise Refusal("policy.extensions",
                          f"/expires_at: this would be extension {count} of "
                          f"{document['entry_id']!r}; the measure policy in force allows "
                          f"{cap}. Let it expire, or impose it anew on a new decision")
        return True, count


def _payload(token: jws.CompactJWS) -> dict[str, Any]:
    try:
        document = jws.parse_payload(token)
    except VerificationError as exc:
        raise Refusal(exc.code, exc.message) from None
    try:
        version = schemas.declared_version("entry", document)
    except DocumentError as exc:
        raise Refusal(exc.code, exc.message) from None
    # v1 stays readable (a v1 revoke is still accepted), but cannot pass the gate
    _refuse_if(gate.v1_problem(document) if version == 1 else gate.missing(document))
    try:
        schemas.check("entry", document, version)
    except DocumentError as exc:
        raise Refusal(exc.code, exc.message) from None
    return document


def _refuse_if(problem: gate.Problem | None) -> None:
    if problem is not None:
        raise Refusal(*problem)


def _iso(when: datetime | None) -> str:
    return "?" if when is None else when.isoformat().replace("+00:00", "Z")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _peek_issuer(token: str) -> str | None:
    """The issuer an unverified payload claims: only to word a refusal, never to trust."""
    try:
        claimed = jws.strict_json(unb64u(token.split(".")[1])).get("issuer")
    except Exception:
        return None
    return claimed if isinstance(claimed, str) else None
