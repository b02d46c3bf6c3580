"""Refusals beyond one-per-code: more variants of each class the issue names, and every class
side by side with good entries in one batch through the real sync flow (SQLite, PostgreSQL),
where none raises, none stops the cursor, and every good entry is accepted and delivered."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.entries import REASONS, Admission, EntryStatus, Published, Refused
from interdict.installation import Installation
from interdict.keys import jws, truststore
from interdict.keys.jwk import b64u
from interdict.keys.truststore import KeyInfo, TrustSnapshot
from interdict.storage import transaction, utcnow
from interdict.storage.models import Cursor, EntryRevision, QuarantinedEntry

Make = Callable[..., dict[str, Any]]


def _load_cases() -> ModuleType:
    """The one-input-per-code table of test_admission.py, reused rather than copied."""
    spec = importlib.util.spec_from_file_location(
        "admission_cases", Path(__file__).with_name("test_admission.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = _load_cases()


def token(signer: jws.Signer, header: Any, payload: bytes) -> str:
    return CASES.raw_token(signer, header, payload)


VARIANTS: dict[str, tuple[str, Callable[[Any, Make], tuple[str, Any]]]] = {
    "alg HS256": ("header.alg", lambda w, e: (token(
        w.court, CASES.header(w.court, alg="HS256"), jws.canonical_json(e())), None)),
    "alg ES256": ("header.alg", lambda w, e: (token(
        w.court, CASES.header(w.court, alg="ES256"), jws.canonical_json(e())), None)),
    "alg missing": ("header.alg", lambda w, e: (token(
        w.court, CASES.header(w.court, alg=None), jws.canonical_json(e())), None)),
    "alg in lower case": ("header.alg", lambda w, e: (token(
        w.court, CASES.header(w.court, alg="ed25519"), jws.canonical_json(e())), None)),
    "typ missing": ("header.typ", lambda w, e: (token(
        w.court, CASES.header(w.court, typ=None), jws.canonical_json(e())), None)),
    "typ of a receipt": ("header.typ", lambda w, e: (
        w.court.sign_document(e(), jws.TYP_RECEIPT), None)),
    "kid not a string": ("header.kid_missing", lambda w, e: (token(
        w.court, CASES.header(w.court, kid=7), jws.canonical_json(e())), None)),
    "header repeats a key": ("header.json", lambda w, e: _with_raw_header(
        w.court, b'{"alg":"Ed25519","alg":"none","kid":"' + w.court.kid.encode()
        + b'","typ":"interdict-entry+jws"}', jws.canonical_json(e()))),
    "four parts": ("jws.malformed", lambda w, e: (CASES.signed(w, e()) + ".AAAA", None)),
    "empty signature": ("jws.malformed", lambda w, e: (
        CASES.signed(w, e()).rsplit(".", 1)[0] + ".", None)),
    "leading whitespace": ("jws.trailing_data", lambda w, e: (" " + CASES.signed(w, e()), None)),
    "padded base64": ("jws.base64", lambda w, e: (CASES.signed(w, e()) + "==", None)),
    "signature cut short": ("signature.invalid", lambda w, e: (_short_signature(
        CASES.signed(w, e())), None)),
    "rolled back revision": ("revision.replay", lambda w, e: (
        CASES.signed(w, e(op="amend", revision=2)), CASES.ACTIVE)),
    "payload is a string": ("payload.not_object", lambda w, e: (token(
        w.court, CASES.header(w.court), b'"an entry"'), None)),
    "payload not utf-8": ("payload.json", lambda w, e: (token(
        w.court, CASES.header(w.court), b'{"a": "\xff"}'), None)),
    "Infinity": ("payload.non_finite", lambda w, e: (token(
        w.court, CASES.header(w.court), b'{"revision": Infinity}'), None)),
    "nested duplicate key": ("payload.duplicate_key", lambda w, e: (token(
        w.court, CASES.header(w.court), b'{"subject": {"type": "person", "type": "x"}}'),
        None)),
    "nested unknown field": ("schema.unknown_field", lambda w, e: (CASES.signed(w, e(
        legal_basis={"instrument": "Civil Procedure Law", "article": "262"})), None)),
    "impossible date": ("schema.violation", lambda w, e: (CASES.signed(w, e(
        expires_at="2028-02-30T00:00:00Z")), None)),
    "revision zero": ("schema.violation", lambda w, e: (CASES.signed(w, e(revision=0)), None)),
}


def _short_signature(token: str) -> str:
    head, body, signature = token.split(".")
    return f"{head}.{body}.{b64u(jws.unb64u(signature)[:60])}"


def _with_raw_header(signer: jws.Signer, header: bytes, payload: bytes) -> tuple[str, None]:
    signing_input = f"{b64u(header)}.{b64u(payload)}"
    return f"{signing_input}.{b64u(signer.raw_sign(signing_input.encode()))}", None


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_more_variants_of_each_refusal_class(variant: str, make_entry: Make) -> None:
    reason, case = VARIANTS[variant]
    assert reason in REASONS
    world = CASES.World()
    made, known = case(world, make_entry)
    outcome = world.admit(made, known)
    assert isinstance(outcome, Refused), f"{variant}: accepted"
    assert (outcome.reason, outcome.raw) == (reason, made.encode("utf-8", "surrogateescape"))


def test_a_key_not_yet_valid_verifies_nothing(make_entry: Make) -> None:
    signer = jws.Signer(Ed25519PrivateKey.generate())
    trust = TrustSnapshot({signer.kid: KeyInfo(signer.kid, "issuer", "court-7", signer.public_key,
                                               "active", CASES.NOW + timedelta(days=1), None)},
                          {"court-7": frozenset({"travel.air", "credit.loan"})})
    outcome = Admission(trust, {}, CASES.NOW).admit(
        Published(1, signer.sign_document(make_entry(), jws.TYP_ENTRY), CASES.NOW))
    assert isinstance(outcome, Refused) and outcome.reason == "key.outside_validity"


# -- every class in one batch, through the sync flow --------------------------------------

class InstalledWorld:
    """test_admission's World, but with its keys in a real installation's trust store."""

    def __init__(self, inst: Installation) -> None:
        self.court = inst.issuer_signer("court-7")
        self.revoked, self.expired, self.tax, self.stranger, self.agency = (
            jws.Signer(Ed25519PrivateKey.generate()) for _ in range(5))
        actor = "operator:test"
        with transaction(inst.db) as session:
            truststore.add_issuer(session, issuer_id="tax-office", name="Tax office",
                                  measures=["credit.loan"], actor=actor)
            truststore.register_key(session, owner_kind="issuer", owner_id="tax-office",
                                    public_key=self.tax.public_key, actor=actor)
            for signer in (self.revoked, self.expired):
                truststore.add_issuer_key(session, issuer_id="court-7", actor=actor,
                                          public_key=signer.public_key,
                                          valid_from=utcnow() - timedelta(days=30))
            truststore.revoke_key(session, owner_kind="issuer", owner_id="court-7",
                                  kid=self.revoked.kid, actor=actor)
            truststore.retire_key(session, owner_kind="issuer", owner_id="court-7",
                                  kid=self.expired.kid, actor=actor)


def _setup(world: InstalledWorld, make: Make, entry_id: str,
           known: dict[tuple[str, str], EntryStatus] | None) -> list[str]:
    """Published entries that put ``entry_id`` in the state a case expects."""
    if not known:
        return []
    (status,) = known.values()
    if status.expires_at is not None:  # an entry in force with this end and extensions
        return [CASES.signed(world, document) for document in _extended(make, status)]
    if status.status == "active":
        return [CASES.signed(world, make(entry_id=entry_id, revision=status.revision))]
    return [CASES.signed(world, make(entry_id=entry_id, revision=status.revision - 1)),
            CASES.signed(world, make(entry_id=entry_id, op="revoke", revision=status.revision,
                                     subject=None, measures=None, expires_at=None,
                                     redress=None, listed_at=None))]


def _extended(make: Make, status: EntryStatus) -> list[dict[str, Any]]:
    """An impose and ``status.extensions`` extensions (a day each), ending at
    ``status.expires_at`` with ``status.assessment`` at ``status.revision``."""
    assert status.expires_at is not None and status.assessment is not None
    first = status.revision - status.extensions
    documents = []
    for revision in range(first, status.revision + 1):
        end = status.expires_at - timedelta(days=status.revision - revision)
        assessment = status.assessment if revision == status.revision else (
            f"{status.assessment} (as assessed for revision {revision})")
        documents.append(make(op="impose" if revision == first else "amend", revision=revision,
                              expires_at=end.isoformat().replace("+00:00", "Z"),
                              assessment=assessment))
    return documents


def _policy_as_in_test_admission(installation: Installation) -> None:
    """Apply the measure policy test_admission's world has: permit.business not covered,
    travel.rail only under the Railway Safety Act, credit.loan extended once at most."""
    from interdict.accountability import policy

    with transaction(installation.db) as session:
        document = policy.active(session).document
        covered = {m: r for m, r in document["measures"].items()
                   if m in CASES.POLICY.covered}  # type: ignore[operator]
        for m, instruments in CASES.POLICY.instruments.items():
            covered[m] = {**covered[m], "instruments": sorted(instruments)}
        for m, cap in CASES.POLICY.max_extensions.items():
            covered[m] = {**covered[m], "max_extensions": cap}
        policy.apply(session, {**document, "version": "test", "measures": covered}, utcnow())


def test_every_refusal_class_beside_good_entries_in_one_sync(
        installation: Installation, make_entry: Make, prefect_api: str) -> None:
    from interdict import flows

    world = InstalledWorld(installation)
    setup: list[str] = []
    batch: list[tuple[str, str]] = []  # (expected outcome, token)
    for n, reason in enumerate(sorted(CASES.CASES)):
        entry_id = f"court-7/{reason}"

        def make(**changes: Any) -> dict[str, Any]:
            return make_entry(**{"entry_id": entry_id, **changes})  # noqa: B023

        bad, known = CASES.CASES[reason](world, make)
        setup += _setup(world, make, entry_id, known)
        batch += [(reason, bad), ("accepted", CASES.signed(world, make_entry(
            entry_id=f"court-7/good-{n}")))]
    installation.public.publish(setup)
    seqs = installation.public.publish([t for _, t in batch])
    expected = {seq: outcome for seq, (outcome, _) in zip(seqs, batch, strict=True)}
    _policy_as_in_test_admission(installation)

    report = flows.sync(str(installation.home.root)).to_json()
    assert (report["accepted"], report["quarantined"]) == (len(setup) + len(REASONS),
                                                           len(REASONS))
    with transaction(installation.db) as session:
        refused = dict(session.execute(sa.select(QuarantinedEntry.public_seq,
                                                 QuarantinedEntry.reason)).all())
        accepted = set(session.execute(sa.select(EntryRevision.public_seq)).scalars())
        cursor = session.get(Cursor, "ingest")
    assert refused == {s: r for s, r in expected.items() if r != "accepted"}
    assert accepted >= {s for s, r in expected.items() if r == "accepted"}
    assert cursor is not None and cursor.position == seqs[-1]
    travel = report["directives"]["travel"]
    assert travel["delivered"] >= len(REASONS) and travel["failed"] == 0


def test_an_extension_beyond_the_cap_is_released_by_retry_once_the_policy_allows_it(
        installation: Installation, make_entry: Make) -> None:
    """Extensions are counted from the stored revisions; `quarantine retry` re-examines a
    refused one under the policy in force. A v1 impose stays refused: it is wrong in itself."""
    from interdict import issuers
    from interdict.accountability import policy
    from interdict.entries import store
    from interdict.flows.ingest import ingest_once

    def with_cap(cap: int) -> None:
        with transaction(installation.db) as session:
            document = policy.active(session).document
            measures = {m: {**r, "max_extensions": cap} for m, r in document["measures"].items()}
            policy.apply(session, {**document, "version": f"cap {cap}", "measures": measures},
                         utcnow())

    def extension(revision: int, month: str) -> dict[str, Any]:
        return make_entry(op="amend", revision=revision, expires_at=f"2028-{month}-01T00:00:00Z",
                          assessment=f"Reviewed in round {revision}: the judgment is still "
                                     "unperformed, so the restriction remains necessary.")

    with_cap(1)
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(expires_at="2028-01-01T00:00:00Z"), extension(2, "02"), extension(3, "03"),
        make_entry(entry_id="court-7/old", schema="interdict/entry/v1", decision=None,
                   assessment=None, notice=None)]))
    ingest_once(str(installation.home.root))
    with transaction(installation.db) as session:
        refused = dict(session.execute(sa.select(QuarantinedEntry.public_seq,
                                                 QuarantinedEntry.reason)).all())
    assert refused == {3: "policy.extensions", 4: "gate.entry_v1"}

    with_cap(2)
    retried = {r.seq: r for r in store.retry(installation.db, installation.public)}
    assert retried[3].outcome == "released" and retried[3].previous == "policy.extensions"
    assert retried[4].outcome == "refused" and retried[4].reason == "gate.entry_v1"
    with transaction(installation.db) as session:
        facts = store.extension_facts(session, [("court-7", "court-7/case-1")])
    assert facts[("court-7", "court-7/case-1")][2] == 2
