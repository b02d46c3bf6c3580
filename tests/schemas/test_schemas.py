"""The shared schemas: examples validate, invalid variants fail at the right place, formats run."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from interdict import schemas
from interdict.errors import DocumentError

EXAMPLES = resources.files("interdict.schemas").joinpath("examples")

# invalid variant -> (the JSON pointer at fault, the keyword that fails)
INVALID = {
    "invalid-entry-impossible-date.json": ("/expires_at", "format"),
    "invalid-entry-naive-timestamp.json": ("/expires_at", "format"),
    "invalid-entry-url.json": ("/legal_basis/url", "format"),
    "invalid-entry-unknown-field.json": ("/subject", "additionalProperties"),
    "invalid-entry-no-redress.json": ("", "required"),
    "invalid-entry-no-expiry.json": ("", "required"),
    "invalid-entry-no-instrument.json": ("/legal_basis", "required"),
    "invalid-entry-unknown-measure.json": ("/measures/0/type", "enum"),
    "invalid-entry-revision-zero.json": ("/revision", "minimum"),
    "invalid-directive-no-legal-basis.json": ("", "required"),
    "invalid-directive-no-redress.json": ("", "required"),
    "invalid-directive-no-policy.json": ("", "required"),
    "invalid-receipt-rejected-without-detail.json": ("", "required"),
    "invalid-receipt-v2-flagged-lift.json": ("/status", "not"),
    "invalid-receipt-v2-flagged-without-flag.json": ("", "required"),
    "invalid-receipt-v2-erased-impose.json": ("/action", "const"),
    "invalid-receipt-v2-flag-code.json": ("/flag/code", "enum"),
    "invalid-audit-event-ref-name.json": ("/refs", "pattern"),  # via propertyNames
    "invalid-agency-manifest-endpoint.json": ("/settings/endpoint", "format"),
    "invalid-agency-manifest-subject-field.json": ("/subject_fields/1", "enum"),
    "invalid-entry-v2-no-notice.json": ("", "anyOf"),  # neither notice nor notice_exemption
    "invalid-entry-v2-decision-date.json": ("/decision/date", "format"),
    "invalid-entry-v2-notice-item.json": ("/notice/covered/1", "enum"),
}


def _load(name: str) -> Any:
    return json.loads(EXAMPLES.joinpath(name).read_text(encoding="utf-8"))


def _kind(name: str) -> str:
    stem = name.removeprefix("invalid-").removesuffix(".json")
    return next(k for k in sorted(schemas.KINDS, key=len, reverse=True) if stem.startswith(k))


def _version(name: str) -> int | None:
    """The version the example names (examples of older versions stay valid against theirs)."""
    document = _load(name)
    return schemas.declared_version(_kind(name), document) if "schema" in document else None


def test_every_schema_has_an_id_a_version_and_the_2020_12_dialect() -> None:
    for kind in (*schemas.KINDS, "common"):
        for version in schemas.versions(kind):
            schema = schemas.load(kind, version)
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            assert schema["$id"] == schemas.schema_id(kind, version)
            assert schema["x-version"] == version
        assert schemas.versions(kind)[-1] == schemas.current(kind)


@pytest.mark.parametrize("kind", schemas.KINDS)
def test_each_kind_has_a_valid_example(kind: str) -> None:
    document = _load(f"{kind}.json")
    assert schemas.problems(kind, document) == []
    if "schema" in schemas.load(kind)["properties"]:
        assert document["schema"] == schemas.document_schema(kind)


@pytest.mark.parametrize("name", ["entry-revoke.json", "directive-lift.json",
                                  "directive-v1.json", "receipt-v1.json",
                                  "receipt-v2-flagged.json", "receipt-v2-lift-erased.json",
                                  "entry-v1.json", "entry-v1-revoke.json"])
def test_other_valid_examples(name: str) -> None:
    assert schemas.problems(_kind(name), _load(name), _version(name)) == []
    assert schemas.is_valid(_kind(name), _load(name), _version(name))


def test_a_document_of_an_older_version_is_checked_against_its_own_schema() -> None:
    v1 = _load("directive-v1.json")
    assert schemas.declared_version("directive", v1) == 1
    assert schemas.problems("directive", v1, 1) == []
    assert {p.path for p in schemas.problems("directive", v1)} == {"/schema", ""}  # not v2
    with pytest.raises(DocumentError) as raised:
        schemas.declared_version("directive", {**v1, "schema": "interdict/directive/v9"})
    assert raised.value.code == "schema.unknown_version"


def test_entry_v2_is_the_gate_on_top_of_v1() -> None:
    v1, v2 = schemas.load("entry", 1), schemas.load("entry", 2)
    assert v2["$id"] == schemas.schema_id("entry", 2) and v2["x-version"] == 2
    assert _version("entry.json") == 2 and _version("entry-v1.json") == 1
    assert set(v2["properties"]) - set(v1["properties"]) == {
        "decision", "assessment", "notice", "notice_exemption"}
    for unknown in ("interdict/entry/v3", "interdict/entry/v02"):
        with pytest.raises(DocumentError):
            schemas.declared_version("entry", {"schema": unknown})


def test_every_invalid_example_is_listed_here() -> None:
    on_disk = {p.name for p in EXAMPLES.iterdir() if p.name.startswith("invalid-")}
    assert on_disk == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_variant_fails_with_path_and_reason(name: str) -> None:
    path, keyword = INVALID[name]
    found = schemas.problems(_kind(name), _load(name), _version(name))
    assert found, f"{name} validated"
    assert (found[0].path, found[0].keyword) == (path, keyword), found[0]
    with pytest.raises(DocumentError, match=f"at {path or '/'}") as raised:
        schemas.check(_kind(name), _load(name), _version(name))
    expected = "schema.unknown_field" if keyword == "additionalProperties" else "schema.violation"
    assert raised.value.code == expected


@pytest.mark.parametrize("value", ["2026-11-01", "yesterday", "2026-11-01T25:00:00Z",
                                   "2026-02-29T00:00:00Z"])
def test_date_time_format_is_really_checked(value: str) -> None:
    document = _load("entry.json")
    document["effective_from"] = value
    assert {p.path for p in schemas.problems("entry", document)} == {"/effective_from"}


def test_revoke_needs_no_subject_but_impose_does() -> None:
    revoke = _load("entry-revoke.json")
    assert "subject" not in revoke and schemas.problems("entry", revoke) == []
    revoke["op"] = "impose"
    missing = {p.message for p in schemas.problems("entry", revoke)}
    assert "'subject' is a required property" in missing
