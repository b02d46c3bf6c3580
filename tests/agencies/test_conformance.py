"""The conformance kit: a good adapter passes every named check; each broken one fails the
checks its fault breaks, with a message that says why, and `agency test` exits non-zero."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.agencies import conformance
from interdict.cli import main
from interdict.keys import jws, public_key_to_pem
from tests.agencies.conftest import manifest_for

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def by_name(report: conformance.Report) -> dict[str, conformance.Check]:
    return {c.name: c for c in report.checks}


def test_the_built_in_simulation_passes_every_check_by_name() -> None:
    report = conformance.run(manifest_for("travel", "kit-travel"))
    assert [c.name for c in report.checks] == list(conformance.NAMES)
    assert report.ok, report.failed
    assert "the key the adapter provisioned" in by_name(report)["receipt-keys"].detail
    assert report.summary() == f"{len(conformance.NAMES)} of {len(conformance.NAMES)} checks " \
                               "passed"


@pytest.mark.parametrize(("adapter", "failing", "message"), [
    ("unsigned-receipts", {"impose", "amend", "duplicate", "lift", "amend-before-impose",
                           "lift-unknown", "reroute", "directive-v1", "bad-signature",
                           "wrong-agency"},
     r"the receipt for d-[0-9a-f]{32} is not valid \[jws.malformed\]"),
    ("not-idempotent", {"duplicate"},
     r"the repeated amend d-[0-9a-f]{32} was answered 'applied'.*expected 'duplicate'"),
    ("ignores-lifts", {"lift", "lift-unknown", "holdings"},
     r"holdings\(\) still lists d-[0-9a-f]{32} \(entry a, lifted by d-[0-9a-f]{32} which was "
     r"answered 'applied'\)"),
    ("swallows-failures", {"failure-reported"},
     r"answered 'applied', yet holdings\(\) fails \[delivery.holdings\]: the failure was "
     r"swallowed"),
])
def test_a_broken_adapter_fails_exactly_the_checks_its_fault_breaks(
        broken_adapters: dict[str, str], adapter: str, failing: set[str], message: str) -> None:
    report = conformance.run(manifest_for(adapter))
    assert {c.name for c in report.failed} == failing
    first = next(c for c in report.checks if not c.passed)
    assert first.name == min(failing, key=conformance.NAMES.index)
    assert any(re.search(message, c.detail) for c in report.failed), \
        [c.detail for c in report.failed]


def test_an_adapter_that_replaces_deliver_fails_the_protocol_check_and_nothing_runs(
        broken_adapters: dict[str, str]) -> None:
    report = conformance.run(manifest_for("overrides-deliver"))
    checks = by_name(report)
    assert checks["manifest"].passed and not checks["protocol"].passed
    assert "overrides deliver: implement _deliver/_holdings instead" in checks["protocol"].detail
    assert all(checks[n].detail == "not run: the 'protocol' check failed"
               for n in conformance.NAMES[2:])


def test_receipts_must_verify_under_the_manifests_keys(broken_adapters: dict[str, str]) -> None:
    from conformance_adapters import FOREIGN_KEY  # type: ignore[import-not-found]

    stranger = jws.Signer(Ed25519PrivateKey.generate())
    wrong = conformance.run(manifest_for("foreign-keyed",
                                         public_keys=[public_key_to_pem(stranger.public_key)]))
    impose = by_name(wrong)["impose"]
    assert not impose.passed
    assert "[receipt.unknown_key]" in impose.detail
    assert f"public_keys[0] {stranger.kid}" in impose.detail
    right = jws.Signer(FOREIGN_KEY)
    assert conformance.run(manifest_for(
        "foreign-keyed", public_keys=[public_key_to_pem(right.public_key)])).ok
    none = by_name(conformance.run(manifest_for("foreign-keyed")))["receipt-keys"]
    assert not none.passed and "lists no public_keys and the adapter provisions none" in \
        none.detail


@pytest.mark.parametrize(("changes", "reason"), [
    ({"adapter": "not-installed"}, "[adapter.unknown] no adapter named 'not-installed'"),
    ({"measures": ["travel.moon"]}, "[schema.violation] agency-manifest does not match its "
                                    "schema at /measures/0"),
])
def test_a_bad_manifest_fails_the_first_check_and_nothing_else_runs(
        changes: dict[str, Any], reason: str) -> None:
    report = conformance.run({**manifest_for("travel"), **changes})
    assert report.checks[0].name == "manifest" and reason in report.checks[0].detail
    assert not any(c.passed for c in report.checks)


def test_agency_test_prints_each_check_and_exits_non_zero_on_a_failure(
        run: Run, broken_adapters: dict[str, str],
        write_manifest: Callable[[dict[str, Any]], Path]) -> None:
    code, out, err = run("agency", "test", str(write_manifest(manifest_for("travel", "kit"))))
    assert code == 0 and err == ""
    assert out.count("  PASS  ") == len(conformance.NAMES)
    code, out, err = run("agency", "test", str(write_manifest(manifest_for("not-idempotent"))))
    assert code == 1
    assert "  FAIL  duplicate" in out and "  PASS  lift " in out
    assert err.startswith("error[conformance.failed]: 14 of 15 checks passed; failed: "
                          "duplicate")
    code, out, _ = run("agency", "test", "--json", str(write_manifest(manifest_for("travel"))))
    assert code == 0 and '"ok": true' in out


def test_agency_test_names_a_manifest_that_is_not_json(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{"id": "x",')
    code, out, err = run("agency", "test", str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"error[manifest.json]: manifest {path} is not valid JSON")


def test_agency_new_refuses_a_bad_name_unknown_measures_and_a_folder_in_use(
        run: Run, tmp_path: Path) -> None:
    code, _, err = run("agency", "new", "Harbour_Permits", "--dir", str(tmp_path))
    assert code == 1 and err.startswith("error[scaffold.name]: agency name 'Harbour_Permits'")
    code, _, err = run("agency", "new", "harbour", "--dir", str(tmp_path),
                       "--measures", "permit.business,travel.moon")
    assert code == 1 and "error[scaffold.measures]: --measures permit.business,travel.moon" in err
    assert not (tmp_path / "harbour").exists()
    (tmp_path / "harbour").mkdir()
    (tmp_path / "harbour" / "mine.txt").write_text("keep me")
    code, _, err = run("agency", "new", "harbour", "--dir", str(tmp_path))
    assert code == 1 and "error[scaffold.exists]" in err and "nothing was written" in err
    assert [p.name for p in (tmp_path / "harbour").iterdir()] == ["mine.txt"]
    code, out, _ = run("agency", "new", "harbour-2", "--dir", str(tmp_path))
    assert code == 0 and out.strip() == f"created {tmp_path / 'harbour-2'}"
    manifest = conformance.read_manifest(tmp_path / "harbour-2" / "manifest.json")
    assert (manifest["id"], manifest["adapter"]) == ("harbour-2", "harbour-2")
    assert "public_keys" not in manifest  # the adapter provisions its own at onboarding
    pyproject = (tmp_path / "harbour-2" / "pyproject.toml").read_text()
    assert 'harbour-2 = "harbour_2_adapter.adapter:Harbour2Adapter"' in pyproject


@pytest.mark.slow
def test_a_third_party_runs_the_kit_as_a_pytest_plugin(
        broken_adapters: dict[str, str], tmp_path: Path,
        write_manifest: Callable[[dict[str, Any]], Path]) -> None:
    """What an adapter's own CI does: `-p interdict.agencies.conformance`, one test."""
    (tmp_path / "test_agency.py").write_text(
        "def test_conformance(conformance_check):\n"
        "    assert conformance_check.passed, conformance_check.detail\n")
    manifest = write_manifest(manifest_for("ignores-lifts"))
    env = {**os.environ, "PYTHONPATH": ":".join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
         "interdict.agencies.conformance", f"--agency-manifest={manifest}", "--rootdir",
         str(tmp_path), str(tmp_path / "test_agency.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED test_agency.py::test_conformance[lift]" in result.stdout
    assert "FAILED test_agency.py::test_conformance[holdings]" in result.stdout
    assert "3 failed, 12 passed" in result.stdout
