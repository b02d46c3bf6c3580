"""Property-based admission tests: random mutations of a valid signed entry are never accepted
unless they are a valid signature, by an authorised key, over a valid document; and admission
never raises, whatever it is given."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from interdict import schemas
from interdict.entries import Accepted, Admission, Published, Refused
from interdict.entries.admission import DEFAULT_MAX_DURATION
from interdict.keys import jws
from interdict.keys.jwk import b64u, public_jwk
from interdict.keys.truststore import KeyInfo, TrustSnapshot

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ISSUER = "trade-ministry"
ALLOWED = frozenset({"permit.business", "credit.loan", "procurement.contract"})
EXAMPLE: dict[str, Any] = json.loads(
    resources.files("interdict.schemas").joinpath("examples/entry.json").read_text("utf-8"))
PROPERTIES = settings(max_examples=100, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])


def _signer() -> jws.Signer:
    return jws.Signer(Ed25519PrivateKey.generate())


AUTHORISED, REVOKED, RETIRED, OTHER_ISSUER, STRANGER = (_signer() for _ in range(5))
SIGNERS = {"authorised": AUTHORISED, "revoked": REVOKED, "retired": RETIRED,
           "other issuer": OTHER_ISSUER, "stranger": STRANGER}
TRUST = TrustSnapshot(
    {k.kid: k for k in (
        KeyInfo(AUTHORISED.kid, "issuer", ISSUER, AUTHORISED.public_key, "active",
                NOW - timedelta(days=90), None),
        KeyInfo(REVOKED.kid, "issuer", ISSUER, REVOKED.public_key, "revoked",
                NOW - timedelta(days=90), None),
        KeyInfo(RETIRED.kid, "issuer", ISSUER, RETIRED.public_key, "retired",
                NOW - timedelta(days=90), NOW - timedelta(days=1)),
        KeyInfo(OTHER_ISSUER.kid, "issuer", "tax-office", OTHER_ISSUER.public_key, "active",
                NOW - timedelta(days=90), None))},
    {ISSUER: ALLOWED, "tax-office": frozenset({"credit.loan"})})
VALID = AUTHORISED.sign_document(EXAMPLE, jws.TYP_ENTRY)


def admit(token: str) -> Accepted | Refused:
    return Admission(TRUST, {}, NOW).admit(Published(1, token, NOW))


def test_the_starting_point_is_valid_and_verifies_with_another_library() -> None:
    assert isinstance(admit(VALID), Accepted)
    key = OKPKey.import_key(public_jwk(AUTHORISED.public_key))
    assert json.loads(jose_jws.deserialize_compact(VALID, key, algorithms=["Ed25519"]).payload) \
        == EXAMPLE


# -- bytes of the token ------------------------------------------------------------------

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.= \n+/"


@st.composite
def mutated_tokens(draw: st.DrawFn) -> str:
    token = VALID
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(token)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "swap"]))
        char = draw(st.one_of(st.sampled_from(ALPHABET), st.characters()))
        if kind == "replace" and at < len(token):
            token = token[:at] + char + token[at + 1:]
        elif kind == "insert":
            token = token[:at] + char + token[at:]
        elif kind == "delete":
            token = token[:at] + token[at + draw(st.integers(1, 8)):]
        elif kind == "truncate":
            token = token[:at]
        else:
            token = ".".join(draw(st.permutations(token.split("."))))
    return token


@PROPERTIES
@given(mutated_tokens())
def test_a_token_with_changed_bytes_is_accepted_only_if_unchanged(token: str) -> None:
    outcome = admit(token)
    if isinstance(outcome, Accepted):
        assert token == VALID
    else:
        assert outcome.reason and outcome.detail


@PROPERTIES
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: b.decode("latin-1"))))
def test_arbitrary_input_is_refused_without_raising(token: str) -> None:
    assert isinstance(admit(token), Refused)


# -- the protected header, validly signed ------------------------------------------------

HEADER_VALUES = {
    "alg": ["Ed25519", "EdDSA", "none", "HS256", "ES256", "RS256", "ed25519", "", None, 1],
    "kid": [AUTHORISED.kid, OTHER_ISSUER.kid, STRANGER.kid, "", None, 7],
    "typ": [jws.TYP_ENTRY, jws.TYP_ENTRY.upper(), jws.TYP_DIRECTIVE, "JWT", None],
    "crit": [None, ["b64"], [], "exp"],  # the first value of each list follows the profile
}


@PROPERTIES
@given(st.fixed_dictionaries({k: st.one_of(st.just(v[0]), st.sampled_from(v))  # half keep it
                              for k, v in HEADER_VALUES.items()}),
       st.dictionaries(st.sampled_from(["jku", "x5u", "b64", "cty", "zip"]),
                       st.one_of(st.booleans(), st.text(max_size=10)), max_size=2))
def test_a_header_is_accepted_only_when_it_follows_the_profile(
        chosen: dict[str, Any], extra: dict[str, Any]) -> None:
    header = {**extra, **{k: v for k, v in chosen.items() if v is not None}}
    signing_input = f"{b64u(jws.canonical_json(header))}.{b64u(jws.canonical_json(EXAMPLE))}"
    token = f"{signing_input}.{b64u(AUTHORISED.raw_sign(signing_input.encode()))}"
    follows = (header.get("alg") in ("Ed25519", "EdDSA") and header.get("kid") == AUTHORISED.kid
               and str(header.get("typ")).lower() == jws.TYP_ENTRY and "crit" not in header)
    event(f"follows the profile: {follows}")
    assert isinstance(admit(token), Accepted) == follows


# -- the payload, re-signed ----------------------------------------------------------------

INTEGERS = st.integers(-(2**63), 2**64 - 1)  # what JSON libraries (and orjson) serialise
JSON = st.recursive(st.none() | st.booleans() | INTEGERS | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
FIELDS = [*EXAMPLE, "priority", "signature"]


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.one_of(st.sampled_from(["reason", "date", "measure"]),  # often harmless
                              st.sampled_from(["set", "delete", "subject", "op"])))
        if kind == "set":
            document[draw(st.sampled_from(FIELDS))] = draw(JSON)
        elif kind == "delete":
            document.pop(draw(st.sampled_from(FIELDS)), None)
        elif kind == "measure":
            document["measures"] = [{"type": t} for t in draw(st.lists(st.sampled_from(
                [*sorted(ALLOWED), "credit.card", "travel.air", "x"]), min_size=0, max_size=3))]
        elif kind == "reason":
            document["reason"] = draw(st.text(max_size=50))
        elif kind == "subject" and isinstance(document.get("subject"), dict):
            document["subject"][draw(st.sampled_from(["type", "names", "ssn"]))] = draw(JSON)
        elif kind == "date":
            shift = timedelta(days=draw(st.integers(-400, 2500)))
            field = draw(st.sampled_from(["effective_from", "expires_at"]))
            document[field] = (NOW + shift).isoformat().replace("+00:00", "Z")
        else:
            document["op"] = draw(st.sampled_from(["amend", "revoke", "impose", "delete"]))
    return document


def _acceptable(document: dict[str, Any], signer: str) -> bool:
    """The oracle, from the reference validator and the rules, not from admission's code."""
    if signer != "authorised" or schemas.problems("entry", document, 2):
        return False
    if document["issuer"] != ISSUER or not document["entry_id"].startswith(ISSUER + "/"):
        return False
    if document["op"] != "impose" or any(m["type"] not in ALLOWED
                                         for m in document["measures"]):
        return False
    start = datetime.fromisoformat(document["effective_from"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(document["expires_at"].replace("Z", "+00:00"))
    told = datetime.fromisoformat(document["notice"]["at"].replace("Z", "+00:00"))
    return (start < end and end > NOW and end - start <= DEFAULT_MAX_DURATION
            and told <= start)  # the example's notice covers everything, and has no exemption


@PROPERTIES
@given(mutated_documents(), st.one_of(st.just("authorised"), st.sampled_from(sorted(SIGNERS))))
def test_a_changed_document_is_accepted_only_if_valid_and_signed_by_an_authorised_key(
        document: dict[str, Any], signer: str) -> None:
    token = SIGNERS[signer].sign_document(document, jws.TYP_ENTRY)
    expected = _acceptable(document, signer)
    event(f"acceptable: {expected}")
    assert isinstance(admit(token), Accepted) == expected
