"""The shared JSON Schemas (2020-12) and how interdict applies them.

Each schema file is ``<kind>.v<N>.json``; a document names its schema in its ``schema`` member
as ``interdict/<kind>/v<N>``. Versions live side by side: interdict writes the ``CURRENT``
version of each kind (the default of every function here) and still reads older ones
(``declared_version`` says which one a document names). ``jsonschema`` is the reference
implementation here: it defines what valid means and explains failures. Format checks
(``date-time``, ``uri``) really run: a FormatChecker is always passed and the format extras are
a dependency.

On the hot path (``check`` and ``is_valid``) a compiled validator of the same schemas
(jsonschema-rs, ~8 µs per entry against ~1–4 ms) answers first; only a document it finds
invalid is handed to jsonschema for the explanation. tests/schemas/test_differential.py keeps the
two in agreement.

jsonschema itself is imported only when a validator of it is first needed: with its format
extras its import takes over a second here, which every short-lived process (a CLI command,
an agency's child process) would pay for documents that are valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from interdict.errors import DocumentError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError
    from referencing import Registry

BASE = "https://interdict.example/schemas/"
KINDS = ("entry", "directive", "receipt", "audit-event", "agency-manifest", "policy",
         "tombstone")
#: the version interdict writes, per kind (1 when not named); older versions stay readable
CURRENT = {"directive": 2, "entry": 2, "receipt": 2}


@dataclass(frozen=True)
class SchemaProblem:
    """Why a document is invalid: a JSON pointer to the spot, the keyword, and the reason."""

    path: str
    keyword: str
    message: str

    @property
    def code(self) -> str:
        closed = self.keyword in ("additionalProperties", "unevaluatedProperties")
        return "schema.unknown_field" if closed else "schema.violation"

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


@cache
def _schemas() -> dict[str, dict[str, Any]]:
    """Every schema file, by ``$id``."""
    by_id: dict[str, dict[str, Any]] = {}
    for item in resources.files(__name__).iterdir():
        if item.name.endswith(".json") and ".v" in item.name:
            schema = json.loads(item.read_text(encoding="utf-8"))
            by_id[schema["$id"]] = schema
    return by_id


@cache
def _registry() -> Registry:
    """The schemas as jsonschema's reference registry."""
    from referencing import Registry, Resource

    return Registry().with_resources(
        (uri, Resource.from_contents(schema)) for uri, schema in _schemas().items())


def current(kind: str) -> int:
    """The version of ``kind`` interdict writes now."""
    return CURRENT.get(kind, 1)


def schema_id(kind: str, version: int | None = None) -> str:
    return f"{BASE}{kind}/v{version or current(kind)}"


def document_schema(kind: str, version: int | None = None) -> str:
    """The value of a document's ``schema`` member."""
    return f"interdict/{kind}/v{version or current(kind)}"


@cache
def versions(kind: str) -> tuple[int, ...]:
    """Every version of ``kind`` there is a schema for, oldest first."""
    by_id = _schemas()
    prefix = f"{BASE}{kind}/v"
    return tuple(sorted(int(uri[len(prefix):]) for uri in by_id if uri.startswith(prefix)
                        and uri[len(prefix):].isdigit()))


@cache
def _declared(kind: str) -> dict[str, int]:
    # Every directive and receipt names its version: one lookup, not a scan of the schemas.
    return {document_schema(kind, version): version for version in versions(kind)}


def declared_version(kind: str, document: Any) -> int:
    """The version of its kind a document names in its ``schema`` member.

    Raises:
        DocumentError: ``schema.unknown_version`` when it names none interdict knows.
    """
    declared = document.get("schema") if isinstance(document, dict) else None
    version = _declared(kind).get(declared) if isinstance(declared, str) else None
    if version is not None:
        return version
    known = ", ".join(document_schema(kind, v) for v in versions(kind))
    raise DocumentError(f"/schema {declared!r} is not one of {known}",
                        code="schema.unknown_version")


def load(kind: str, version: int | None = None) -> dict[str, Any]:
    by_id = _schemas()
    version = version or current(kind)
    try:
        return by_id[schema_id(kind, version)]
    except KeyError:
        raise DocumentError(f"no schema {kind} v{version}", code="schema.unknown_version") from None


@cache
def validator(kind: str, version: int | None = None) -> Draft202012Validator:
    return validator_for_definition(load(kind, version))


def validator_for_definition(definition: dict[str, Any]) -> Draft202012Validator:
    """A validator for one ``$defs`` member (e.g. to check an id given on the command line)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(definition, registry=_registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


@cache
def fast_validator(kind: str, version: int | None = None) -> Any:
    """The compiled validator of the same schema, with formats checked too."""
    registry = jsonschema_rs.Registry(list(_schemas().items()))
    return jsonschema_rs.validator_for(load(kind, version), registry=registry,
                                       validate_formats=True)


def is_valid(kind: str, document: Any, version: int | None = None) -> bool:
    return bool(fast_validator(kind, version).is_valid(document))


def _pointer(error: ValidationError) -> str:
    return "".join(f"/{part}" for part in error.absolute_path)


def problems(kind: str, document: Any, version: int | None = None) -> list[SchemaProblem]:
    """Every problem, most relevant first."""
    from jsonschema.exceptions import best_match

    errors = list(validator(kind, version).iter_errors(document))
    if not errors:
        return []
    # An unknown field is the most actionable finding (often a typo that also explains a
    # "required" error next to it), so it leads; otherwise jsonschema's own relevance order.
    closed = [e for e in errors if e.validator in ("additionalProperties", "unevaluatedProperties")]
    first = closed[0] if closed else best_match(errors)
    ordered = [first] + [e for e in errors if e is not first]
    return [SchemaProblem(_pointer(e), str(e.validator), e.message) for e in ordered]


def check(kind: str, document: Any, version: int | None = None) -> None:
    """Raises:
    DocumentError: with code ``schema.violation`` or ``schema.unknown_field`` and the path.
    """
    if is_valid(kind, document, version):
        return
    found = problems(kind, document, version) or [
        # The validators disagree: refuse (the stricter answer) and say so.
        SchemaProblem("", "fast-validator", "refused by the compiled validator only")]
    first = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise DocumentError(f"{kind} does not match its schema at {first}{more}", code=first.code)
