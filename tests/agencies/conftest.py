"""Fixtures for onboarding and the conformance kit: manifests, and adapters installed the way
a third party's are (a module on sys.path and an entry point in a dist-info folder)."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interdict.agencies import onboarding

HERE = Path(__file__).resolve().parent
MODULE = "conformance_adapters"  # tests/agencies/conformance_adapters.py


def manifest_for(adapter: str, agency: str | None = None, **changes: Any) -> dict[str, Any]:
    """A valid manifest for ``adapter`` (modelled on the built-in travel agency)."""
    manifest = onboarding.builtin_manifest("travel")
    manifest.update({"id": agency or adapter, "adapter": adapter,
                     "name": f"{adapter} under test"})
    manifest.update(changes)
    return manifest


@pytest.fixture
def broken_adapters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Register every adapter of conformance_adapters.py as an installed package would:
    returns adapter name -> class name."""
    monkeypatch.syspath_prepend(str(HERE))
    adapters = importlib.import_module(MODULE)
    site = tmp_path / "site"
    dist = site / "interdict_test_adapters-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: interdict-test-adapters\n"
                                   "Version: 0\n")
    names = {cls.name: cls.__name__ for cls in adapters.ALL}
    (dist / "entry_points.txt").write_text("[interdict.adapters]\n" + "".join(
        f"{name} = {MODULE}:{cls}\n" for name, cls in names.items()))
    monkeypatch.syspath_prepend(str(site))
    return names


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(manifest: dict[str, Any]) -> Path:
        path = tmp_path / f"{manifest['id']}.json"
        path.write_text(json.dumps(manifest, indent=2))
        return path

    return write
