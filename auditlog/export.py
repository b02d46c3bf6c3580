"""Writing the audit bundle an auditor verifies offline (format: docs/auditing.md).

An export reads personal data (entries and directives name people), so it is itself an audit
event, ``audit.exported``. The event is appended *first*, a checkpoint is signed over it, and
then everything is read in that same transaction: the bundle holds its own export record, its
latest checkpoint covers every event in it, and no sync can commit in between (appending takes
the log head's lock, and every document is written together with its event). The files go
to a hidden staging folder that is renamed into place only after the commit, so either the
bundle exists and its export is logged, or neither.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import sqlalchemy as sa
from sqlmodel import Session, col

from interdict.auditlog import bundle, checkpoints, log
from interdict.errors import AuditError, UsageError
from interdict.installation import Installation
from interdict.keys.jwk import unb64u
from interdict.keys.jws import canonical_json
from interdict.storage import tombstones, transaction
from interdict.storage.models import (
    AuditEvent,
    Checkpoint,
    Directive,
    EntryRevision,
    Receipt,
    TrustedKey,
)

_BATCH = 5000


@dataclass(frozen=True)
class Exported:
    directory: Path
    size: int
    root: str
    checkpoints: int
    entries: int
    directives: int
    receipts: int
    keys: int
    erased: int = 0  # documents listed in erased.jsonl instead

    def to_json(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "size": self.size, "root": self.root,
                "checkpoints": self.checkpoints, "entries": self.entries,
                "directives": self.directives, "receipts": self.receipts, "keys": self.keys,
                "erased": self.erased}


def export(installation: Installation, directory: Path, *, actor: str) -> Exported:
    """Write a bundle to ``directory`` (which must not exist, or be empty).

    Raises:
        UsageError: ``export.exists`` when ``directory`` holds anything.
        AuditError: ``log.gap`` when the stored log is missing events.
    """
    target = directory.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} already exists and is not empty; export into a new folder "
                         "(an auditor's bundle is never overwritten)", code="export.exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with transaction(installation.db) as session:
            summary = _write(session, installation, staging, actor)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Exported(directory=target, **summary)


# The documents a bundle holds, with their kind as erasure names it (document.erased).
_DOCUMENTS = ((bundle.ENTRIES, "entry", EntryRevision), (bundle.DIRECTIVES, "directive", Directive),
              (bundle.RECEIPTS, "receipt", Receipt))


def _count(session: Session, model: Any, *where: Any) -> int:
    return int(session.execute(sa.select(sa.func.count()).select_from(model)
                               .where(*where)).scalar_one())


def _write(session: Session, installation: Installation, out: Path,
           actor: str) -> dict[str, Any]:
    present = [_count(session, model, tombstones.present(model.jws))
               for _, _, model in _DOCUMENTS]
    counts = dict(zip(("entries", "directives", "receipts"), present, strict=True))
    erased = sum(_count(session, model, tombstones.erased(model.jws))
                 for _, _, model in _DOCUMENTS)
    # Counts only: the log never holds personal data, not even who or what was exported.
    log.append(session, [log.event("audit.exported", actor=actor, entries=counts["entries"],
                                   directives=counts["directives"],
                                   receipts=counts["receipts"], erased=erased or None)])
    latest = checkpoints.sign(session, installation.log_signer, installation.home.log_origin)
    size = _write_events(session, out / bundle.EVENTS)
    if size != latest.size:
        raise AuditError(f"the log holds {size} events but its head says {latest.size}",
                         code="log.gap")
    history = _write_checkpoints(session, out, latest)
    (out / bundle.LOG_VKEY).write_text(installation.log_signer.vkey() + "\n")
    kids: set[str] = set()
    order = {EntryRevision: (col(EntryRevision.id),), Directive: (col(Directive.id),),
             Receipt: (col(Receipt.at), col(Receipt.directive_id))}
    for name, _, model in _DOCUMENTS:
        query = sa.select(model.jws).where(tombstones.present(model.jws)).order_by(*order[model])
        with (out / name).open("wb") as handle:
            _write_tokens(session, query, handle, kids)
    _write_erased(session, out / bundle.ERASED)
    keys = _write_jwks(session, out / bundle.JWKS, kids)
    root = base64.b64encode(bytes(latest.root)).decode("ascii")
    return {"size": size, "root": root, "checkpoints": history, "keys": keys,
            "erased": erased, **counts}


def _write_erased(session: Session, path: Path) -> None:
    """``erased.jsonl``: per document erased after retention, its kind, digest and the
    ``document.erased`` event that records it, in place of the document."""
    with path.open("wb") as handle:
        for _, kind, model in _DOCUMENTS:
            rows = session.execute(sa.select(model.jws).where(tombstones.erased(model.jws))
                                   .execution_options(yield_per=_BATCH)).scalars()
            for value in rows:
                marker = tombstones.read(value)
                if marker is not None and "seq" in marker:
                    handle.write(canonical_json({"kind": kind, "digest": marker["digest"],
                                                 "seq": marker["seq"]}) + b"\n")


def _write_events(session: Session, path: Path) -> int:
    """``events.jsonl``: line i is exactly the bytes of leaf i, then a newline."""
    written = 0
    query = sa.select(col(AuditEvent.seq), col(AuditEvent.event)).order_by(col(AuditEvent.seq))
    with path.open("wb") as handle:
        rows = session.execute(query.execution_options(yield_per=_BATCH))
        for batch in rows.partitions():
            for seq, _ in batch:
                if seq != written:
                    raise AuditError(f"audit_event has no row for seq {written}",
                                     code="log.gap")
                written += 1
            handle.write(b"".join(bytes(event) + b"\n" for _, event in batch))
    return written


def _write_checkpoints(session: Session, out: Path, latest: Checkpoint) -> int:
    folder = out / bundle.CHECKPOINTS
    folder.mkdir()
    count = 0
    for row in session.execute(sa.select(Checkpoint).order_by(col(Checkpoint.size))).scalars():
        (folder / str(row.size)).write_text(row.note)
        count += 1
    (out / bundle.CHECKPOINT).write_text(latest.note)
    return count


def _write_tokens(session: Session, query: Any, handle: BinaryIO, kids: set[str]) -> None:
    headers: dict[str, str] = {}  # one signer's tokens share one header: decode it once
    rows = session.execute(query.execution_options(yield_per=_BATCH)).scalars()
    for batch in rows.partitions():
        for token in batch:
            head = token.split(".", 1)[0]
            if head not in headers:
                headers[head] = _kid(head)
            kids.add(headers[head])
        handle.write("".join(token + "\n" for token in batch).encode("utf-8"))


def _kid(header_b64: str) -> str:
    try:
        return str(orjson.loads(unb64u(header_b64)).get("kid", ""))
    except (ValueError, AttributeError):
        return ""  # a stored token is always well formed; verify reports one that is not


def _write_jwks(session: Session, path: Path, kids: set[str]) -> int:
    """Every key that signed an exported document, and the log's keys."""
    rows = session.execute(sa.select(TrustedKey).where(
        sa.or_(col(TrustedKey.kid).in_(kids), col(TrustedKey.owner_kind) == "log"))
        .order_by(col(TrustedKey.owner_kind), col(TrustedKey.owner_id),
                  col(TrustedKey.valid_from))).scalars()
    keys = [bundle.jwk_entry(kid=row.kid, public_key=unb64u(row.public_key),
                             owner_kind=row.owner_kind, owner_id=row.owner_id,
                             status=row.status, valid_from=row.valid_from,
                             valid_until=row.valid_until) for row in rows]
    path.write_bytes(orjson.dumps({"keys": keys}, option=orjson.OPT_INDENT_2) + b"\n")
    return len(keys)
