"""Receipt v2 under both validators: the compiled one (hot path) must agree with jsonschema on
the v2 examples and on every odd string at every string field, and on the rules v2 adds."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from interdict import schemas
from tests.schemas.test_differential import odd_string_disagreements

EXAMPLES = resources.files("interdict.schemas").joinpath("examples")
V2 = [json.loads(p.read_text()) for p in sorted(EXAMPLES.iterdir(), key=lambda p: p.name)
      if "receipt-v2" in p.name]


def _agree(document: Any) -> bool:
    reference = not schemas.problems("receipt", document, 2)
    return schemas.is_valid("receipt", document, 2) == reference


def test_both_validators_agree_on_every_v2_example_and_odd_string() -> None:
    assert len(V2) >= 6
    for example in V2:
        assert _agree(example)
        assert odd_string_disagreements("receipt", example, 2) == []


BASE = {"schema": "interdict/receipt/v2", "directive_id": "d-" + "0" * 32, "agency": "travel",
        "at": "2026-11-27T09:31:15Z"}


@pytest.mark.parametrize(("changes", "valid"), [
    ({"status": "applied", "action": "impose"}, True),
    ({"status": "applied"}, False),  # the action is echoed
    ({"status": "rejected", "detail": "signature.invalid"}, True),  # unreadable: no action
    ({"status": "duplicate", "action": "lift", "erased": False}, True),
    ({"status": "applied", "action": "amend", "erased": True}, False),
    ({"status": "rejected", "action": "lift", "detail": "x", "erased": True}, False),
    ({"status": "applied", "action": "impose", "flag": {"code": "other", "detail": "x"}}, False),
    ({"status": "flagged", "action": "amend", "flag": {"code": "other", "detail": "x"}}, True),
    ({"status": "flagged", "action": "amend", "flag": {"code": "other"}}, False),
    ({"status": "flagged", "flag": {"code": "other", "detail": "x"}}, False),
])
def test_the_rules_v2_adds(changes: dict[str, Any], valid: bool) -> None:
    document = {**BASE, **changes}
    assert schemas.is_valid("receipt", document, 2) is valid
    assert (not schemas.problems("receipt", document, 2)) is valid
