"""The command line: errors are one line and a non-zero exit; the demo works end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interdict.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_the_main_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("demo", "sync", "status", "quarantine", "issuer", "publish", "agency"):
        assert command in out


def test_a_missing_home_is_one_clear_line(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    code, out, err = run(capsys, "--home", str(tmp_path / "nowhere"), "status")
    assert code == 1 and out == ""
    assert err.startswith("error[home.missing]: no interdict home at")
    assert len(err.strip().splitlines()) == 1


def test_issuer_commands_refuse_bad_input_with_codes(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERDICT_HOME", str(tmp_path / "home"))
    assert run(capsys, "init")[0] == 0
    code, _, err = run(capsys, "issuer", "add", "court-7", "--measures", "travel.air,travel.moon")
    assert code == 1 and "error[issuer.measures]: unknown measure types: travel.moon" in err
    code, _, err = run(capsys, "issuer", "add", "Court 7", "--measures", "travel.air")
    assert code == 1 and "error[issuer.id]" in err
    assert run(capsys, "issuer", "add", "court-7", "--measures", "travel.air")[0] == 0
    code, _, err = run(capsys, "issuer", "add", "court-7", "--measures", "travel.air")
    assert code == 1 and "error[issuer.exists]" in err
    entry = tmp_path / "entry.json"
    entry.write_text('{"schema": "interdict/entry/v2", "op": "revoke"}')
    code, _, err = run(capsys, "publish", str(entry), "--issuer", "court-7")
    assert code == 1 and "error[schema.violation]" in err and str(entry) in err
    entry.write_text('{"schema": "interdict/entry/v2", "op": "impose"}')
    code, _, err = run(capsys, "publish", str(entry), "--issuer", "court-7")
    assert code == 1 and "error[gate.decision]" in err
    entry.write_text('{"schema": "interdict/entry/v1", "op": "impose"}')
    code, _, err = run(capsys, "publish", str(entry), "--issuer", "court-7")
    assert code == 1 and "error[gate.entry_v1]" in err and "interdict/entry/v2" in err
    code, _, err = run(capsys, "publish", str(entry))
    assert code == 1 and "error[usage]" in err


@pytest.mark.slow
def test_demo_end_to_end_twice(tmp_path: Path, prefect_api: str) -> None:
    """The README's main job through the installed console script, as a user runs it."""
    env = {**os.environ, "INTERDICT_HOME": str(tmp_path / "home"), "PREFECT_API_URL": prefect_api}
    script = str(Path(sys.executable).with_name("interdict"))

    def interdict(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, *args], env=env, capture_output=True, text=True,
                              check=check, timeout=300)

    first = json.loads(interdict("demo", "--json").stdout)
    assert first["published"] == 15
    assert (first["sync"]["accepted"], first["sync"]["quarantined"]) == (8, 7)
    delivered = {a: d["delivered"] for a, d in first["sync"]["directives"].items()}
    assert delivered == {"loans": 7, "permits": 2, "travel": 6}
    (flag,) = first["flagged"]  # travel cannot match a booking on a tax number
    assert (flag["agency"], flag["entry_id"], flag["code"]) == (
        "travel", "court-7/2026-0015", "identity_not_established")
    subject_page = Path(first["reports"]["subject"]).read_text(encoding="utf-8")
    assert "E12345678" in subject_page and "Zhang Wei" in subject_page
    assert "Petrov" not in subject_page and "Chen Jie" not in subject_page
    stats_page = Path(first["reports"]["stats"]).read_text(encoding="utf-8")
    assert "<svg" in stats_page and "Zhang" not in stats_page and "E12345678" not in stats_page
    reasons = sorted(q["reason"] for q in first["quarantine"])
    assert reasons == ["gate.notice", "issuer.measure_not_authorised", "issuer.unknown",
                       "policy.duration", "revision.replay", "schema.violation",
                       "signature.invalid"]

    second = json.loads(interdict("demo", "--json").stdout)
    assert second["published"] == 0 and second["sync"]["accepted"] == 0
    assert all(d["delivered"] == 0 and d["issued"] == 0
               for d in second["sync"]["directives"].values())
    # the only new leaf is the first run's audited read of the subject report, written once
    assert second["sync"]["checkpoint"]["size"] == first["sync"]["checkpoint"]["size"] + 1
    assert second["reports"] == first["reports"]

    refused = interdict("agency", "travel", "check-booking", "--subject", "passport:E12345678",
                        check=False)
    assert refused.returncode == 3 and "REFUSED" in refused.stdout
    assert "appeals@court-7.example" in refused.stdout
    allowed = interdict("agency", "loans", "check-loan", "--subject", "national-id:NG-33018842",
                        check=False)
    assert allowed.returncode == 0 and "allowed" in allowed.stdout  # revoked in the samples
    status = json.loads(interdict("status", "--json").stdout)
    assert status["public_database"]["backlog"] == 0
    assert status["directives"] == {"delivered": 15, "flagged": 1}
    assert status["audit_log"]["checkpoint"] == status["audit_log"]["size"]
    listed = json.loads(interdict("quarantine", "list", "--json").stdout)
    assert {q["seq"] for q in listed} == {8, 9, 10, 11, 12, 13, 14}
