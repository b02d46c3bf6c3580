"""``interdict agency new NAME``: a separate, installable adapter package to start from.

The package registers its adapter under the entry-point group ``interdict.adapters``, inherits
the agency-side store of the built-in simulations (verify, apply once, sign receipts with its
own key), runs the conformance kit as its tests, and carries a manifest to fill in. The
templates are in ``agencies/templates/``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from interdict import schemas
from interdict.errors import DocumentError, UsageError

NAME = re.compile(r"^[a-z][a-z0-9-]{0,47}$")
DEFAULT_MEASURES = ("permit.business",)
SUBJECT_FIELDS = ("type", "names", "identifiers")


@dataclass(frozen=True)
class Names:
    """Everything named after NAME: the agency and adapter id, the package and the class."""

    name: str

    @property
    def module(self) -> str:
        return self.name.replace("-", "_") + "_adapter"

    @property
    def class_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-") if part) + "Adapter"

    @property
    def project(self) -> str:
        return f"interdict-adapter-{self.name}"

    def substitutions(self) -> dict[str, str]:
        return {"name": self.name, "module": self.module, "class_name": self.class_name,
                "project": self.project}


def manifest(names: Names, measures: list[str]) -> dict[str, Any]:
    """The manifest to fill in; without public_keys, since the adapter makes its own key."""
    document = {
        "schema": schemas.document_schema("agency-manifest"),
        "id": names.name,
        "name": f"{names.name} (fill in the agency's name)",
        "contact": f"sanctions-desk@{names.name}.example",
        "adapter": names.name,
        "settings": {"batch_size": 500, "max_attempts": 8},
        "measures": measures,
        "subject_fields": list(SUBJECT_FIELDS),
        "identifier_schemes": ["national-id", "passport"],
    }
    try:
        schemas.check("agency-manifest", document)
    except DocumentError as exc:
        raise UsageError(f"--measures {','.join(measures)}: {exc.message} (see the measure "
                         "types in docs/documents.md)", code="scaffold.measures") from None
    return document


def create(name: str, parent: Path, measures: list[str] | None = None) -> Path:
    """Write the package into ``parent/NAME``; return its folder.

    Raises:
        UsageError: a NAME that cannot be an agency id and a Python package
            (``scaffold.name``), unknown measures (``scaffold.measures``), or a folder that
            exists and is not empty (``scaffold.exists``).
    """
    if not NAME.match(name):
        raise UsageError(f"agency name {name!r}: use a lower-case letter, then letters, digits "
                         "and hyphens (at most 48), e.g. harbour-permits", code="scaffold.name")
    names = Names(name)
    document = manifest(names, list(measures or DEFAULT_MEASURES))
    target = parent / name
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty; nothing was written",
                         code="scaffold.exists")
    files = {
        "pyproject.toml": _render("pyproject.toml.tmpl", names),
        "README.md": _render("README.md.tmpl", names),
        f"{names.module}/__init__.py": _render("__init__.py.tmpl", names),
        f"{names.module}/adapter.py": _render("adapter.py.tmpl", names),
        "tests/test_adapter.py": _render("test_adapter.py.tmpl", names),
        "manifest.json": json.dumps(document, indent=2) + "\n",
    }
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target


def _render(template: str, names: Names) -> str:
    text = resources.files("interdict.agencies").joinpath(f"templates/{template}").read_text(
        encoding="utf-8")
    return Template(text).substitute(names.substitutions())
