"""docs/reason-codes.md is the contract with issuers: it must list exactly the codes in use."""

from __future__ import annotations

import re
from pathlib import Path

from interdict.entries import REASONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md"


def test_the_documented_codes_are_the_codes_in_use() -> None:
    documented = re.findall(r"^\| `([a-z0-9_.]+)` \|", DOC.read_text(), flags=re.MULTILINE)
    assert documented == list(REASONS)
