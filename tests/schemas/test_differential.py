"""The compiled hot-path validator and the reference (jsonschema) must agree on every document.

Documents are the shipped examples, mutated at random: a value anywhere replaced by another
type, an odd string (dates, URIs, ids, leap seconds, lower-case 't'), a key dropped or added.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interdict import schemas

EXAMPLES = resources.files("interdict.schemas").joinpath("examples")
VALID = {kind: json.loads(EXAMPLES.joinpath(f"{kind}.json").read_text()) for kind in schemas.KINDS}
# older versions still read, by example
OLDER = {"entry": "entry-v1.json", "directive": "directive-v1.json"}
# (kind, version) -> an example of that version
CASES = {**{(kind, schemas.current(kind)): document for kind, document in VALID.items()},
         **{(kind, 1): json.loads(EXAMPLES.joinpath(name).read_text())
            for kind, name in OLDER.items()}}

ODD = [
    "", " ", "2026-11-01", "2026-11-01T00:00:00", "2026-11-01t00:00:00z", "2026-11-01T23:59:60Z",
    "2026-02-29T00:00:00Z", "2028-02-29T00:00:00Z", "2026-11-01T00:00:00.1234567Z",
    "2026-11-01T00:00:00+24:00", "2026-11-01T00:00:00-00:00", "https://example.org/a b",
    "mailto:x@example.org", "urn:x:y", "//no-scheme", "court-7/", "Court-7", "travel.air",
    "d-" + "0" * 32, "d-" + "0" * 31, "sha256:" + "0" * 64, "CN", "cn", "Latn", "latn", "1980",
    "1980-13", "1980-02-30", "2026-02-29", "2028-02-29", "2026-1-05", "\u0000", "ü" * 5,
    "x" * 5000]
ODD_STRINGS = st.sampled_from(ODD)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**60), st.floats(allow_nan=False),
                   ODD_STRINGS, st.text(max_size=20), st.lists(st.integers(), max_size=2),
                   st.dictionaries(st.sampled_from(["type", "value", "x"]), st.text(max_size=5),
                                   max_size=2))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, int, Any]:
    kind, version = draw(st.sampled_from(sorted(CASES)))
    document = copy.deepcopy(CASES[(kind, version)])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)[1:]))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "drop" and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "note", "url", "to"]))] = draw(VALUES)
        else:
            parent[path[-1]] = draw(VALUES)
    return kind, version, document


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_both_validators_agree(case: tuple[str, int, Any]) -> None:
    kind, version, document = case
    reference = not schemas.problems(kind, document, version)
    assert schemas.is_valid(kind, document, version) == reference, (kind, version, document)


def test_both_validators_accept_every_example() -> None:
    for (kind, version), document in CASES.items():
        assert schemas.is_valid(kind, document, version)
        assert not schemas.problems(kind, document, version)


def odd_string_disagreements(kind: str, example: Any, version: int) -> list[tuple[Any, str]]:
    """Each (path, value) where the two validators disagree once an ODD string replaces the
    string at that path of ``example``."""
    found = []
    for path in _paths(example)[1:]:
        parent = example
        for step in path[:-1]:
            parent = parent[step]
        if not isinstance(parent[path[-1]], str):
            continue
        for value in ODD:
            document = copy.deepcopy(example)
            target = document
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
            if schemas.is_valid(kind, document, version) != (
                    not schemas.problems(kind, document, version)):
                found.append((path, value))
    return found


def test_both_validators_agree_on_every_odd_string_at_every_string_field() -> None:
    """Exhaustive where random search is thin: formats and patterns are where they differ."""
    disagreements = [(kind, version, *found) for (kind, version), example in CASES.items()
                     for found in odd_string_disagreements(kind, example, version)]
    assert disagreements == []
