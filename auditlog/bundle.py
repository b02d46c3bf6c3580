"""The audit bundle: its files, how keys are written in ``jwks.json``, and what a check reports.

Shared by :mod:`interdict.auditlog.export` (which writes bundles) and
:mod:`interdict.auditlog.verify` (which checks them), so the two cannot drift apart. The
format is documented in ``docs/auditing.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from interdict.errors import AuditError
from interdict.keys.jwk import public_jwk

EVENTS = "events.jsonl"
CHECKPOINT = "checkpoint"
CHECKPOINTS = "checkpoints"
LOG_VKEY = "log.vkey"
JWKS = "jwks.json"
ENTRIES = "entries.jsonl"
DIRECTIVES = "directives.jsonl"
RECEIPTS = "receipts.jsonl"
ERASED = "erased.jsonl"  # optional: bundles exported before erasure existed lack it
FILES = (EVENTS, CHECKPOINT, CHECKPOINTS, LOG_VKEY, JWKS, ENTRIES, DIRECTIVES, RECEIPTS)

# Which kind of key owner may sign which document (DESIGN.md "Trust").
SIGNER_KIND = {"entry": "issuer", "directive": "engine", "receipt": "agency"}


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def jwk_entry(*, kid: str, public_key: bytes, owner_kind: str, owner_id: str, status: str,
              valid_from: datetime, valid_until: datetime | None) -> dict[str, Any]:
    """One member of ``jwks.json``: an RFC 7517 JWK plus who owns it and when it may vouch.

    JWK consumers ignore members they do not know (RFC 7517 section 4), so any JOSE library
    still reads the set.
    """
    return {**public_jwk(public_key), "kid": kid,
            "owner": {"kind": owner_kind, "id": owner_id}, "status": status,
            "valid_from": iso(valid_from), "valid_until": iso(valid_until)}


# --------------------------------------------------------------------------------------------
# What a verification reports
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """The first thing found wrong: a cause code, a message, and where."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None  # 1-based line of a .jsonl file
    seq: int | None = None  # leaf index, for events.jsonl

    def where(self) -> str:
        if self.file is None:
            return "bundle"
        place = self.file
        if self.line is not None:
            place += f" line {self.line}"
        if self.seq is not None:
            place += f" (seq {self.seq})"
        return place

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "file": self.file,
                "line": self.line, "seq": self.seq}


@dataclass
class Report:
    """What was checked, with counts, in the order checked."""

    bundle: str
    log_key: str = ""
    log_key_source: str = ""
    origin: str = ""
    size: int = 0
    root: str = ""
    checks: dict[str, int] = field(default_factory=dict)
    witnesses: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    def count(self, check: str, n: int = 1) -> None:
        self.checks[check] = self.checks.get(check, 0) + n

    def fail(self, code: str, message: str, *, file: str | None = None, line: int | None = None,
             seq: int | None = None) -> NoReturn:
        self.failure = Failure(code, message, file, line, seq)
        raise BundleInvalid(self)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "bundle": self.bundle, "log_key": self.log_key,
                "log_key_source": self.log_key_source, "origin": self.origin,
                "size": self.size, "root": self.root, "checks": self.checks,
                "witnesses": self.witnesses, "warnings": self.warnings,
                "timings": {k: round(v, 4) for k, v in self.timings.items()},
                "failure": self.failure.to_json() if self.failure else None}


class BundleInvalid(AuditError):
    """The bundle does not verify; ``report`` says what held before ``report.failure``."""

    def __init__(self, report: Report) -> None:
        assert report.failure is not None
        failure = report.failure
        super().__init__(f"{failure.where()}: {failure.message}", code=failure.code)
        self.report = report


# --------------------------------------------------------------------------------------------
# Reading events.jsonl in blocks
# --------------------------------------------------------------------------------------------

_BLOCK = 1 << 24  # bytes read at a time


class LineReader:
    """The lines of a file, a block at a time, without their newlines.

    After iterating, ``unterminated`` holds the bytes after the last newline (a file cut
    short), which are not yielded as a line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unterminated = b""

    def blocks(self) -> Iterator[list[bytes]]:
        carry = b""
        with self.path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                lines = (carry + block).split(b"\n")
                carry = lines.pop()
                yield lines
        self.unterminated = carry
