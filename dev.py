#!/usr/bin/env python3
"""Set up and run interdict's everyday jobs with nothing but Python 3.11+ installed.

    python3 dev.py demo     create .venv, install interdict, run `interdict demo`
    python3 dev.py test     create .venv, install interdict and its test tools, run ruff + pytest
    python3 dev.py bench    run the benchmark against the floor (python -m interdict.bench --help)

Any further arguments go to the command (`python3 dev.py test -k ingest`). The virtual
environment is reinstalled only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_environment(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py runs on whatever python3 is)
        sys.exit(f"interdict needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp = VENV / ".interdict-install"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv …", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print(f"installing interdict{extras} into .venv (about a minute the first time) …",
          file=sys.stderr)
    subprocess.run([str(BIN / "python"), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "-e", f".{extras}"], cwd=ROOT, check=True)
    stamp.write_text(wanted)


def run(command: list[str]) -> int:
    return subprocess.run(command, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    job, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if job == "demo":
        ensure_environment("")
        return run([str(BIN / "interdict"), "demo", *rest])
    if job == "test":
        ensure_environment("[test]")
        lint = run([str(BIN / "ruff"), "check", "."])
        tests = run([str(BIN / "python"), "-m", "pytest", *rest])
        return lint or tests
    if job == "bench":
        ensure_environment("")
        return run([str(BIN / "python"), "-m", "interdict.bench", *rest])
    print(__doc__)
    return 0 if job in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
