"""The fast paths of token decoding agree with the reference ones.

``strict_json`` parses canonical documents with orjson and everything else with Python's json
and its named refusals; ``unb64u`` decodes with binascii directly. Each is checked here against
its reference on generated input, canonical and not, so the fast path can never accept what the
reference refuses, nor read a document differently.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interdict.errors import VerificationError
from interdict.keys import jws
from interdict.keys.jwk import unb64u

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                         max_leaves=20)


def outcome(parse: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse(data)
    except VerificationError as exc:
        return "refused", exc.code


def reference(data: bytes) -> Any:
    value = jws._strict_reference(data)
    if data.count(b"{") + data.count(b"[") > jws.MAX_DEPTH and jws._depth(value) > jws.MAX_DEPTH:
        raise VerificationError("too deep", code="payload.too_deep")
    return value


def renderings(document: Any) -> list[bytes]:
    """The canonical form, and the forms other producers emit for the same document."""
    compact = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    forms = [compact.encode(), json.dumps(document, sort_keys=True, separators=(",", ":")).encode(),
             json.dumps(document, indent=1).encode()]
    with contextlib.suppress(TypeError):  # orjson refuses integers beyond 64 bits
        forms.append(jws.canonical_json(document))
    if isinstance(document, dict) and document:  # a duplicate key, in canonical spacing
        key = sorted(document)[0]
        forms.append(b"{" + json.dumps(key).encode() + b":0," + compact.encode()[1:])
    return forms


@settings(max_examples=300, deadline=None)
@given(documents)
def test_strict_json_agrees_with_the_reference(document: Any) -> None:
    for data in renderings(document):
        assert outcome(jws.strict_json, data) == outcome(reference, data), data


@pytest.mark.parametrize(("data", "code"), [
    (b'{"a":1,"a":2}', "payload.duplicate_key"),  # compact and sorted: the fast path's shape
    (b'{"a":' * 40 + b"1" + b"}" * 40, "payload.too_deep"),
    (b'{"a":NaN}', "payload.non_finite"),
    (b'{"a":1e400}', "payload.non_finite"),
    (b'{"a":"\xff"}', "payload.json"),
])
def test_canonical_looking_refusals_keep_their_codes(data: bytes, code: str) -> None:
    with pytest.raises(VerificationError) as raised:
        jws.strict_json(data)
    assert raised.value.code == code


def old_unb64u(text: str) -> bytes:
    """The module-level reference: base64's own decoder and the same canonical check."""
    raw = text.encode("ascii")
    if b"=" in raw or len(raw) % 4 == 1:
        raise ValueError("not unpadded base64url")
    decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != raw:
        raise ValueError("not canonical base64url")
    return decoded


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.text(alphabet="AZaz09-_+/=!", max_size=12))
def test_unb64u_agrees_with_the_base64_module(data: bytes, noise: str) -> None:
    encoded = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    assert unb64u(encoded) == data
    for text in (noise, encoded + noise, noise + encoded):
        try:
            expected: Any = old_unb64u(text)
        except ValueError:
            expected = ValueError
        try:
            got: Any = unb64u(text)
        except ValueError:
            got = ValueError
        assert got == expected, text
