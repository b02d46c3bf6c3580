"""Admission, one refusal class at a time: start from a valid signed entry, break exactly one
thing, and expect exactly one reason code (the method of python-tuf's trusted-set tests)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.entries import REASONS, Accepted, Admission, EntryStatus, Published, Refused, gate
from interdict.entries.admission import Policy
from interdict.keys import jws
from interdict.keys.jwk import b64u
from interdict.keys.truststore import KeyInfo, TrustSnapshot

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=365)


# court-7 may impose permit.business, but the measure policy of this world covers no permits,
# only the Railway Safety Act may justify a rail ban, and a loan ban may be extended once
POLICY = Policy(covered=frozenset({"travel.air", "travel.rail", "credit.loan"}),
                instruments={"travel.rail": frozenset({"Railway Safety Act"})},
                max_extensions={"credit.loan": 1})


class World:
    """Issuers, keys and a trust snapshot built from real Ed25519 keys."""

    def __init__(self) -> None:
        self.court = jws.Signer(Ed25519PrivateKey.generate())
        self.revoked = jws.Signer(Ed25519PrivateKey.generate())
        self.expired = jws.Signer(Ed25519PrivateKey.generate())
        self.tax = jws.Signer(Ed25519PrivateKey.generate())
        self.agency = jws.Signer(Ed25519PrivateKey.generate())
        self.stranger = jws.Signer(Ed25519PrivateKey.generate())
        keys = [
            KeyInfo(self.court.kid, "issuer", "court-7", self.court.public_key, "active",
                    LONG_AGO, None),
            KeyInfo(self.revoked.kid, "issuer", "court-7", self.revoked.public_key, "revoked",
                    LONG_AGO, None),
            KeyInfo(self.expired.kid, "issuer", "court-7", self.expired.public_key, "retired",
                    LONG_AGO, NOW - timedelta(days=1)),
            KeyInfo(self.tax.kid, "issuer", "tax-office", self.tax.public_key, "active",
                    LONG_AGO, None),
            KeyInfo(self.agency.kid, "agency", "travel", self.agency.public_key, "active",
                    LONG_AGO, None),
        ]
        self.trust = TrustSnapshot(
            {k.kid: k for k in keys},
            {"court-7": frozenset({"travel.air", "travel.rail", "credit.loan", "permit.business"}),
             "tax-office": frozenset({"credit.loan"})})

    def admit(self, token: str, known: dict[tuple[str, str], EntryStatus] | None = None
              ) -> Accepted | Refused:
        return Admission(self.trust, known or {}, NOW, POLICY).admit(Published(7, token, NOW))


def raw_token(signer: jws.Signer, header: dict[str, Any], payload: bytes) -> str:
    signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(payload)}"
    return f"{signing_input}.{b64u(signer.raw_sign(signing_input.encode()))}"


def header(signer: jws.Signer, **changes: Any) -> dict[str, Any]:
    found = {"alg": "Ed25519", "kid": signer.kid, "typ": jws.TYP_ENTRY}
    found.update(changes)
    return {k: v for k, v in found.items() if v is not None}


Case = Callable[[World, Callable[..., dict[str, Any]]], tuple[str, dict[tuple[str, str],
                                                                       EntryStatus] | None]]
ACTIVE = {("court-7", "court-7/case-1"): EntryStatus(3, "active")}
REVOKED = {("court-7", "court-7/case-1"): EntryStatus(3, "revoked")}
EARLIER_END = datetime(2027, 11, 1, tzinfo=UTC)  # before conftest.BASE_ENTRY's expires_at
NEW_ASSESSMENT = ("Reviewed on 2027-10-01: the debtor still has not paid and has moved assets "
                  "abroad; the restriction remains necessary and proportionate.")


def in_force(assessment: str, extensions: int = 0) -> dict[tuple[str, str], EntryStatus]:
    """case-1 at revision 3, ending before BASE_ENTRY's expiry: an amend to it extends it."""
    return {("court-7", "court-7/case-1"): EntryStatus(3, "active", EARLIER_END, assessment,
                                                       extensions)}


def _notice(**changes: Any) -> dict[str, Any]:
    notice = {"at": "2026-10-25T00:00:00Z", "channel": "email",
              "covered": ["reasons", "legal_basis", "agencies", "expiry", "redress"]}
    notice.update(changes)
    return notice


def signed(w: World, doc: dict[str, Any], signer: jws.Signer | None = None) -> str:
    return (signer or w.court).sign_document(doc, jws.TYP_ENTRY)


CASES: dict[str, Case] = {
    "jws.malformed": lambda w, e: ("only.two", None),
    "jws.base64": lambda w, e: (signed(w, e()).replace(".", ".*", 1), None),
    "jws.trailing_data": lambda w, e: (signed(w, e()) + " \n", None),
    "header.json": lambda w, e: (raw_token(w.court, [1], jws.canonical_json(e())), None),  # type: ignore[arg-type]
    "header.alg": lambda w, e: (raw_token(w.court, header(w.court, alg="none"),
                                          jws.canonical_json(e())), None),
    "header.crit": lambda w, e: (raw_token(w.court, header(w.court, crit=["b64"]),
                                           jws.canonical_json(e())), None),
    "header.kid_missing": lambda w, e: (raw_token(w.court, header(w.court, kid=None),
                                                  jws.canonical_json(e())), None),
    "header.kid_unknown": lambda w, e: (signed(w, e(), w.stranger), None),
    "header.typ": lambda w, e: (w.court.sign_document(e(), jws.TYP_DIRECTIVE), None),
    "signature.invalid": lambda w, e: (_tamper(signed(w, e())), None),
    "signature.wrong_issuer": lambda w, e: (signed(w, e(), w.tax), None),
    "key.revoked": lambda w, e: (signed(w, e(), w.revoked), None),
    "key.outside_validity": lambda w, e: (signed(w, e(), w.expired), None),
    "payload.too_large": lambda w, e: (signed(w, e(reason="x" * 100_000)), None),
    "payload.too_deep": lambda w, e: (raw_token(w.court, header(w.court),
                                                b'{"a":' * 40 + b"1" + b"}" * 40), None),
    "payload.json": lambda w, e: (raw_token(w.court, header(w.court), b"not json"), None),
    "payload.not_object": lambda w, e: (raw_token(w.court, header(w.court), b"[]"), None),
    "payload.duplicate_key": lambda w, e: (raw_token(
        w.court, header(w.court), b'{"revision": 1, "revision": 2}'), None),
    "payload.non_finite": lambda w, e: (raw_token(w.court, header(w.court), b'{"r": NaN}'), None),
    "schema.unknown_version": lambda w, e: (signed(w, e(schema="interdict/entry/v9")), None),
    "schema.violation": lambda w, e: (signed(w, e(redress=None)), None),
    "schema.unknown_field": lambda w, e: (signed(w, e(priority="high")), None),
    "issuer.unknown": lambda w, e: (signed(w, e(issuer="ghost", entry_id="ghost/1"),
                                           w.stranger), None),
    "issuer.measure_not_authorised": lambda w, e: (signed(w, e(measures=[
        {"type": "travel.air"}, {"type": "credit.card"}])), None),
    "entry.issuer_mismatch": lambda w, e: (signed(w, e(entry_id="tax-office/case-1")), None),
    "dates.incoherent": lambda w, e: (signed(w, e(expires_at="2026-10-01T00:00:00Z")), None),
    "dates.expired": lambda w, e: (signed(w, e(effective_from="2020-01-01T00:00:00Z",
                                               expires_at="2021-01-01T00:00:00Z")), None),
    "policy.duration": lambda w, e: (signed(w, e(expires_at="2036-11-01T00:00:00Z")), None),
    "policy.measure_uncovered": lambda w, e: (signed(w, e(measures=[{"type": "permit.business"}])),
                                              None),
    "policy.instrument": lambda w, e: (signed(w, e(measures=[{"type": "travel.rail"}])), None),
    "revision.replay": lambda w, e: (signed(w, e(op="amend", revision=3)), ACTIVE),
    "op.unknown_entry": lambda w, e: (signed(w, e(op="amend", revision=2)), None),
    "op.not_active": lambda w, e: (signed(w, e(op="amend", revision=4)), REVOKED),
    "op.conflict": lambda w, e: (signed(w, e(revision=4)), ACTIVE),
    "policy.extensions": lambda w, e: (signed(w, e(op="amend", revision=4,
                                                   assessment=NEW_ASSESSMENT)),
                                       in_force(e()["assessment"], extensions=1)),
    "gate.entry_v1": lambda w, e: (signed(w, e(schema="interdict/entry/v1", decision=None,
                                               assessment=None, notice=None)), None),
    "gate.decision": lambda w, e: (signed(w, e(decision=None)), None),
    "gate.assessment": lambda w, e: (signed(w, e(assessment="Necessary.  " + " " * 40)), None),
    "gate.notice": lambda w, e: (signed(w, e(notice=None)), None),
    "gate.notice_incomplete": lambda w, e: (signed(w, e(notice=_notice(
        covered=["reasons", "legal_basis", "agencies", "expiry"]))), None),
    "gate.notice_future": lambda w, e: (signed(w, e(notice=_notice(at="2099-01-01T00:00:00Z"))),
                                        None),
    "gate.notice_late": lambda w, e: (signed(w, e(notice=_notice(at="2026-11-02T00:00:00Z"))),
                                      None),
    "gate.extension_assessment": lambda w, e: (signed(w, e(
        op="amend", revision=4, assessment=e()["assessment"].upper() + " ")),
        in_force(e()["assessment"])),
}


def _tamper(token: str) -> str:
    head, body, signature = token.split(".")
    payload = json.loads(jws.unb64u(body))
    payload["reason"] += "!"
    return ".".join((head, b64u(jws.canonical_json(payload)), signature))


def test_every_documented_reason_has_a_case() -> None:
    assert set(CASES) == set(REASONS)


@pytest.mark.parametrize("reason", sorted(CASES))
def test_refused_with_exact_reason(reason: str, make_entry: Callable[..., dict[str, Any]]) -> None:
    world = World()
    token, known = CASES[reason](world, make_entry)
    outcome = world.admit(token, known)
    assert isinstance(outcome, Refused), f"{reason}: accepted"
    assert outcome.reason == reason, outcome.detail
    assert outcome.detail
    assert outcome.raw == token.encode()


def test_a_valid_entry_is_accepted(make_entry: Callable[..., dict[str, Any]]) -> None:
    world = World()
    token = signed(world, make_entry())
    outcome = world.admit(token)
    assert isinstance(outcome, Accepted)
    assert (outcome.issuer, outcome.entry_id, outcome.revision) == ("court-7", "court-7/case-1", 1)
    assert outcome.kid == world.court.kid and outcome.digest == jws.digest(token)


def test_eddsa_alg_is_accepted_for_an_ed25519_key(make_entry: Callable[..., Any]) -> None:
    world = World()
    token = raw_token(world.court, header(world.court, alg="EdDSA"),
                      jws.canonical_json(make_entry()))
    assert isinstance(world.admit(token), Accepted)


def test_revisions_in_one_batch_follow_each_other(make_entry: Callable[..., Any]) -> None:
    world = World()
    admission = Admission(world.trust, {}, NOW)
    tokens = [signed(world, make_entry()),
              signed(world, make_entry(op="amend", revision=3)),
              signed(world, make_entry(op="amend", revision=2)),
              signed(world, make_entry(op="revoke", revision=4, subject=None, measures=None,
                                       expires_at=None, redress=None, listed_at=None))]
    outcomes = [admission.admit(Published(i, t, NOW)) for i, t in enumerate(tokens)]
    kinds = [o.reason if isinstance(o, Refused) else o.op for o in outcomes]
    assert kinds == ["impose", "amend", "revision.replay", "revoke"]
    second = outcomes[1]
    assert isinstance(second, Accepted) and second.gap and second.previous == 1


# -- the entry gate -------------------------------------------------------------------------

def test_a_v1_revoke_still_goes_through(make_entry: Callable[..., Any]) -> None:
    world = World()
    revoke = make_entry(schema="interdict/entry/v1", op="revoke", revision=4, subject=None,
                        measures=None, expires_at=None, redress=None, listed_at=None,
                        decision=None, assessment=None, notice=None)
    outcome = world.admit(signed(world, revoke), ACTIVE)
    assert isinstance(outcome, Accepted) and outcome.op == "revoke"


def test_a_v2_revoke_needs_no_gate(make_entry: Callable[..., Any]) -> None:
    world = World()
    revoke = make_entry(op="revoke", revision=4, subject=None, measures=None, expires_at=None,
                        redress=None, listed_at=None, assessment=None, notice=None)
    assert isinstance(world.admit(signed(world, revoke), ACTIVE), Accepted)


def test_an_exemption_replaces_the_notice_and_allows_a_later_one(
        make_entry: Callable[..., Any]) -> None:
    world = World()
    exemption = {"instrument": "Civil Procedure Law", "provision": "art. 255",
                 "ground": "notice would let the debtor move assets abroad before the order",
                 "notice_due": "2026-11-15T00:00:00Z"}
    alone = world.admit(signed(world, make_entry(notice=None, notice_exemption=exemption)))
    assert isinstance(alone, Accepted)
    deferred = world.admit(signed(world, make_entry(
        notice=_notice(at="2026-11-14T00:00:00Z"), notice_exemption=exemption)))
    assert isinstance(deferred, Accepted)


def test_extensions_are_counted_and_capped(make_entry: Callable[..., Any]) -> None:
    world = World()
    admission = Admission(world.trust, {}, NOW, POLICY)
    first_end, second_end, third_end = ("2027-06-01T00:00:00Z", "2028-01-01T00:00:00Z",
                                        "2028-06-01T00:00:00Z")
    tokens = [
        signed(world, make_entry(expires_at=first_end)),
        # the same end again, a new reason: an amend, not an extension
        signed(world, make_entry(op="amend", revision=2, expires_at=first_end,
                                 reason="partial payment made")),
        # later, with the same assessment: refused
        signed(world, make_entry(op="amend", revision=3, expires_at=second_end)),
        signed(world, make_entry(op="amend", revision=3, expires_at=second_end,
                                 assessment=NEW_ASSESSMENT)),
        # the loan ban may be extended once
        signed(world, make_entry(op="amend", revision=4, expires_at=third_end,
                                 assessment=NEW_ASSESSMENT + " Reviewed again.")),
        # without the loan ban, travel has no cap
        signed(world, make_entry(op="amend", revision=5, expires_at=third_end.replace("06", "07"),
                                 measures=[{"type": "travel.air"}],
                                 assessment=NEW_ASSESSMENT + " Reviewed again.")),
    ]
    outcomes = [admission.admit(Published(i, t, NOW)) for i, t in enumerate(tokens)]
    found = [o.reason if isinstance(o, Refused) else (o.extension, o.extensions)
             for o in outcomes]
    assert found == [(False, 0), (False, 0), "gate.extension_assessment", (True, 1),
                     "policy.extensions", (True, 2)]


def test_counting_extensions_starts_again_at_each_impose() -> None:
    def at(month: int) -> datetime:
        return datetime(2027, month, 1, tzinfo=UTC)

    assert gate.count_extensions([]) == 0
    assert gate.count_extensions([("impose", at(1)), ("amend", at(2)), ("amend", at(2)),
                                  ("amend", at(1)), ("amend", at(3))]) == 2
    assert gate.count_extensions([("impose", at(1)), ("amend", at(2)), ("revoke", None),
                                  ("impose", at(3)), ("amend", at(4))]) == 1
