"""Key files, thumbprints and the JWS profile, against known answers and a second JOSE library."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from interdict.errors import ConfigError, VerificationError
from interdict.keys import jws, keyfile
from interdict.keys.jwk import b64u, public_jwk, thumbprint, unb64u

# RFC 8037 appendix A.1-A.3: the Ed25519 key, and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
# RFC 8037 appendix A.4: the signature over "Example of Ed25519 signing" with {"alg":"EdDSA"}.
RFC8037_JWS = ("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPO"
               "t7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")


def rfc_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(unb64u(RFC8037_D))


def test_thumbprint_matches_rfc_8037() -> None:
    assert thumbprint(unb64u(RFC8037_X)) == RFC8037_KID
    assert jws.Signer(rfc_key()).kid == RFC8037_KID


def test_signatures_match_rfc_8037() -> None:
    signing_input, _, signature = RFC8037_JWS.rpartition(".")
    assert b64u(jws.Signer(rfc_key()).raw_sign(signing_input.encode())) == signature


def test_key_file_is_private_and_encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k.key"
    key = keyfile.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"OPENSSH PRIVATE KEY" in path.read_bytes()
    assert key.private_bytes_raw() not in path.read_bytes()
    assert keyfile.load(path).private_bytes_raw() == key.private_bytes_raw()
    monkeypatch.setenv(keyfile.PASSPHRASE_ENV, "another passphrase")
    with pytest.raises(ConfigError, match="cannot decrypt") as raised:
        keyfile.load(path)
    assert raised.value.code == "key.passphrase"


def test_key_file_refuses_loose_permissions_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    keyfile.generate(path)
    with pytest.raises(ConfigError, match="already exists"):
        keyfile.generate(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as raised:
        keyfile.load(path)
    assert raised.value.code == "key.permissions"


def test_jws_round_trip_and_header_profile() -> None:
    signer = jws.Signer(Ed25519PrivateKey.generate())
    token = signer.sign_document({"b": 1, "a": "x"}, jws.TYP_DIRECTIVE)
    parsed = jws.parse(token, jws.TYP_DIRECTIVE)
    assert parsed.header == {"alg": "Ed25519", "kid": signer.kid, "typ": jws.TYP_DIRECTIVE}
    jws.verify_signature(parsed, signer.public_key)
    assert parsed.payload == b'{"a":"x","b":1}'


def test_another_jose_library_verifies_our_tokens() -> None:
    key = Ed25519PrivateKey.generate()
    signer = jws.Signer(key)
    token = signer.sign_document({"directive_id": "d-1"}, jws.TYP_DIRECTIVE)
    jwk = OKPKey.import_key(public_jwk(signer.public_key))
    result = jose_jws.deserialize_compact(token, jwk, algorithms=["Ed25519", "EdDSA"])
    assert json.loads(result.payload) == {"directive_id": "d-1"}
    assert result.headers()["kid"] == signer.kid


def test_we_verify_another_libraries_tokens_with_eddsa() -> None:
    key = Ed25519PrivateKey.generate()
    signer = jws.Signer(key)
    jwk = OKPKey.import_key(key)
    header = {"alg": "EdDSA", "kid": signer.kid, "typ": jws.TYP_ENTRY}
    token = jose_jws.serialize_compact(header, b'{"x":1}', jwk, algorithms=["EdDSA"])
    jws.verify_signature(jws.parse(token, jws.TYP_ENTRY), signer.public_key)


def _token(header: object, payload: bytes = b"{}") -> str:
    signer = jws.Signer(Ed25519PrivateKey.generate())
    head = b64u(json.dumps(header).encode())
    body = b64u(payload)
    return f"{head}.{body}.{b64u(signer.raw_sign(f'{head}.{body}'.encode()))}"


GOOD_HEADER = {"alg": "Ed25519", "kid": "k", "typ": jws.TYP_ENTRY}


@pytest.mark.parametrize(("token", "code"), [
    ("a.b", "jws.malformed"),
    ("a.b.c.d", "jws.malformed"),
    (".e30.c2ln", "jws.malformed"),
    ("eyJ9.e30=.c2ln", "jws.base64"),
    ("e y.e30.c2ln", "jws.base64"),
    (_token(GOOD_HEADER) + "\n", "jws.trailing_data"),
    (_token({**GOOD_HEADER, "alg": "none"}), "header.alg"),
    (_token({**GOOD_HEADER, "alg": "HS256"}), "header.alg"),
    (_token({**GOOD_HEADER, "alg": "ES256"}), "header.alg"),
    (_token({**GOOD_HEADER, "crit": ["exp"]}), "header.crit"),
    (_token({"alg": "Ed25519", "typ": jws.TYP_ENTRY}), "header.kid_missing"),
    (_token({**GOOD_HEADER, "typ": jws.TYP_RECEIPT}), "header.typ"),
    (_token(["not", "an", "object"]), "header.json"),
])
def test_parse_refuses_with_a_code(token: str, code: str) -> None:
    with pytest.raises(VerificationError) as raised:
        jws.parse(token, jws.TYP_ENTRY)
    assert raised.value.code == code


@pytest.mark.parametrize(("payload", "code"), [
    (b'{"a": 1, "a": 2}', "payload.duplicate_key"),
    (b'{"a": NaN}', "payload.non_finite"),
    (b'{"a": Infinity}', "payload.non_finite"),
    (b"[1, 2]", "payload.not_object"),
    (b"\xff\xfe", "payload.json"),
    (b"{", "payload.json"),
    (b'{"a":' * 40 + b"1" + b"}" * 40, "payload.too_deep"),
])
def test_payload_refuses_with_a_code(payload: bytes, code: str) -> None:
    parsed = jws.parse(_token(GOOD_HEADER, payload), jws.TYP_ENTRY)
    with pytest.raises(VerificationError) as raised:
        jws.parse_payload(parsed)
    assert raised.value.code == code


def test_signature_by_another_key_does_not_verify() -> None:
    token = jws.Signer(Ed25519PrivateKey.generate()).sign(b"{}", jws.TYP_ENTRY)
    other = jws.Signer(Ed25519PrivateKey.generate())
    with pytest.raises(VerificationError) as raised:
        jws.verify_signature(jws.parse(token, jws.TYP_ENTRY), other.public_key)
    assert raised.value.code == "signature.invalid"


def test_strict_base64url() -> None:
    assert unb64u("e30") == b"{}"
    for bad in ("e30=", "e3", "e31"):
        with pytest.raises(ValueError):
            unb64u(bad)
    assert base64.urlsafe_b64decode("e30=") == b"{}"
