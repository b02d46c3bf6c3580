"""Importing a snapshot: what changed since the last import, the guards, and publishing it.

1. settle a run an earlier crash left between planning and publishing (published or not);
2. refuse a snapshot generated before the last one imported;
3. plan against what the last imports published (``import_record``): an ``impose`` for a new
   (or relisted) record, an ``amend`` for a changed one or one near its expiry, a ``revoke``
   for one that left the list or that the list itself ended;
4. refuse a plan that revokes more than the shrink guard allows, unless told the delistings are
   real; refuse measures the issuer may not impose;
5. sign with the issuer's key, record the run as pending, publish every token in one
   transaction, then record the new state and an ``import.published`` audit event.

Publishing and recording touch two databases, so they cannot commit together: the pending run
makes the gap safe. Its first token tells the next import whether the publication happened.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from interdict import issuers, progress
from interdict.auditlog import log
from interdict.entries.admission import DEFAULT_MAX_DURATION
from interdict.errors import DocumentError, UsageError
from interdict.importers.snapshot import Record, Snapshot, check, entry, iso, revocation
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import ImportRecord, ImportRun, Issuer

DEFAULT_VALID_FOR = timedelta(days=365)
# The shrink guard: a snapshot may drop at most this share of the records in force, or this
# many records when that is more. Lists are known to arrive truncated.
SHRINK_SHARE = 0.05
SHRINK_FLOOR = 5


@dataclass(frozen=True)
class Known:
    """What the last imports published for one record."""

    entry_id: str
    revision: int
    digest: str
    status: str  # active | revoked
    expires_at: datetime | None

    def in_force(self, now: datetime) -> bool:
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class Change:
    record_id: str
    op: str  # impose | amend | revoke
    why: str  # new | relisted | changed | renewal | delisted | ended
    document: dict[str, Any]
    digest: str


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    ended: list[str] = field(default_factory=list)  # ended by the list, never imposed
    invalid: dict[str, str] = field(default_factory=dict)  # record id -> problem
    in_force: int = 0  # records in force before this snapshot

    @property
    def removed(self) -> int:
        return sum(c.why == "delisted" for c in self.changes)

    def counts(self) -> dict[str, int]:
        found = Counter(c.op for c in self.changes)
        return {op: found[op] for op in ("impose", "amend", "revoke")}

    def measures(self) -> set[str]:
        return {m["type"] for c in self.changes for m in c.document.get("measures", [])}


@dataclass(frozen=True)
class ImportReport:
    issuer: str
    snapshot: Snapshot
    plan: Plan

    def to_json(self) -> dict[str, Any]:
        s = self.snapshot
        return {"issuer": self.issuer, "source": s.source, "file": s.file,
                "sha256": s.sha256, "generated_at": iso(s.generated_at),
                "records": len(s.records), "published": self.plan.counts(),
                "renewed": sum(c.why == "renewal" for c in self.plan.changes),
                "unchanged": self.plan.unchanged, "ended": self.plan.ended,
                "invalid": self.plan.invalid}


def plan(issuer: str, snapshot: Snapshot, known: dict[str, Known], *, now: datetime,
         valid_for: timedelta) -> Plan:
    """What this snapshot changes. Pure: no database, no signing."""
    result = Plan(in_force=sum(k.in_force(now) for k in known.values()))
    with progress.phase("convert", len(snapshot.records)) as bar:
        for record in snapshot.records.values():
            _plan_record(result, issuer, snapshot, record, known.get(record.record_id),
                         now=now, valid_for=valid_for)
            bar.advance(1)
    for record_id, was in known.items():
        if record_id not in snapshot.records and was.in_force(now):
            why = f"delisted: absent from {snapshot.file} (generated " \
                  f"{iso(snapshot.generated_at)})"
            result.changes.append(Change(record_id, "revoke", "delisted", revocation(
                issuer, snapshot, record_id, revision=was.revision + 1, now=now, why=why), ""))
    return result


def _plan_record(result: Plan, issuer: str, snapshot: Snapshot, record: Record,
                 was: Known | None, *, now: datetime, valid_for: timedelta) -> None:
    active = was is not None and was.in_force(now)
    if record.ends_at is not None and record.ends_at <= now:
        if active and was is not None:
            why = f"ended on {iso(record.ends_at)} according to {snapshot.file}"
            result.changes.append(Change(record.record_id, "revoke", "ended", revocation(
                issuer, snapshot, record.record_id, revision=was.revision + 1, now=now,
                why=why), record.digest))
        elif was is None:
            result.ended.append(record.record_id)
        else:
            result.unchanged += 1
        return
    if was is None or not active:
        op, why = "impose", "new" if was is None else "relisted"
    elif was.digest != record.digest:
        op, why = "amend", "changed"
    elif _due_for_renewal(was, record, now, valid_for):
        op, why = "amend", "renewal"
    else:
        result.unchanged += 1
        return
    document = entry(issuer, snapshot, record, op=op, revision=(was.revision + 1) if was else 1,
                     now=now, valid_for=valid_for)
    problem = record.problem or check(document)
    if problem:
        result.invalid[record.record_id] = problem
        return
    result.changes.append(Change(record.record_id, op, why, document, record.digest))


def _due_for_renewal(was: Known, record: Record, now: datetime, valid_for: timedelta) -> bool:
    """Renew when less than a quarter of the validity is left and renewing extends it."""
    if was.expires_at is None or was.expires_at - now >= valid_for / 4:
        return False
    new_end = now + valid_for if record.ends_at is None else min(now + valid_for, record.ends_at)
    return new_end > was.expires_at


def shrink_limit(in_force: int) -> int:
    return max(SHRINK_FLOOR, math.floor(in_force * SHRINK_SHARE))


def guard(plan_: Plan, snapshot: Snapshot, *, allow_shrink: bool) -> None:
    """Raises:
    DocumentError: ``import.shrink`` when the snapshot drops more records than the guard allows.
    """
    most = shrink_limit(plan_.in_force)
    if plan_.removed > most and not allow_shrink:
        share = plan_.removed / max(plan_.in_force, 1)
        raise DocumentError(
            f"{snapshot.file} drops {plan_.removed} of the {plan_.in_force} records in force "
            f"({share:.0%}); the shrink guard allows {most}. Lists do arrive truncated: check "
            "the file, and import it with --allow-shrink if these delistings are real",
            code="import.shrink")


# -- the database side -------------------------------------------------------------------

def import_snapshot(installation: Installation, snapshot: Snapshot, *, issuer: str,
                    allow_shrink: bool = False, valid_for: timedelta = DEFAULT_VALID_FOR,
                    now: datetime | None = None) -> ImportReport:
    """Publish what ``snapshot`` changes as entries signed by ``issuer``'s local key.

    Raises:
        DocumentError: ``import.older_snapshot``, ``import.shrink``.
        UsageError: ``issuer.unknown``, ``import.measures_not_authorised``,
            ``import.valid_for``.
        ConfigError: ``issuer.no_local_key``.
    """
    now = (now or utcnow()).replace(microsecond=0)
    if not timedelta(days=1) <= valid_for <= DEFAULT_MAX_DURATION:
        raise UsageError(f"--valid-for must be between 1 and {DEFAULT_MAX_DURATION.days} days "
                         "(the policy's longest duration)", code="import.valid_for")
    settle(installation, issuer, snapshot.source)
    with transaction(installation.db) as session:
        allowed = _allowed_measures(session, issuer, snapshot)
        _refuse_older(session, issuer, snapshot)
        known = load(session, issuer, snapshot.source)
    result = plan(issuer, snapshot, known, now=now, valid_for=valid_for)
    guard(result, snapshot, allow_shrink=allow_shrink)
    missing = result.measures() - allowed
    if missing:
        raise UsageError(f"issuer {issuer!r} may not impose {', '.join(sorted(missing))}, "
                         f"which this list needs (docs/importing.md)",
                         code="import.measures_not_authorised")
    tokens = issuers.sign(installation, issuer, [c.document for c in result.changes])
    with transaction(installation.db) as session:
        run = _begin(session, issuer, snapshot, result, tokens, now)
    if tokens:
        installation.public.publish(tokens)  # one transaction: all of them or none
    with transaction(installation.db) as session:
        _finish(session, session.get(ImportRun, run), now)
    return ImportReport(issuer, snapshot, result)


def _allowed_measures(session: Session, issuer: str, snapshot: Snapshot) -> set[str]:
    row = session.get(Issuer, issuer)
    if row is None:
        needed = sorted({m["type"] for r in snapshot.records.values()
                         for m in r.content.get("measures", [])})
        raise UsageError(f"issuer {issuer!r} is not registered; e.g. `interdict issuer add "
                         f"{issuer} --measures {','.join(needed)}`", code="issuer.unknown")
    return set(row.measures)


def _refuse_older(session: Session, issuer: str, snapshot: Snapshot) -> None:
    last = session.execute(
        sa.select(ImportRun.file, ImportRun.generated_at)
        .where(ImportRun.issuer == issuer, ImportRun.source == snapshot.source,
               ImportRun.status == "done")
        .order_by(ImportRun.generated_at.desc()).limit(1)).first()  # type: ignore[attr-defined]
    if last is not None and snapshot.generated_at < last.generated_at:
        raise DocumentError(
            f"{snapshot.file} was generated {iso(snapshot.generated_at)}, before "
            f"{last.file} ({iso(last.generated_at)}), which is already imported; an older "
            "snapshot would undo newer listings", code="import.older_snapshot")


def load(session: Session, issuer: str, source: str) -> dict[str, Known]:
    rows = session.execute(sa.select(ImportRecord).where(
        ImportRecord.issuer == issuer, ImportRecord.source == source)).scalars()
    return {r.record_id: Known(r.entry_id, r.revision, r.digest, r.status, r.expires_at)
            for r in rows}


def _begin(session: Session, issuer: str, snapshot: Snapshot, result: Plan,
           tokens: list[str], now: datetime) -> int:
    changes = [[c.record_id, c.document["entry_id"], c.op, c.document["revision"], c.digest,
                c.document.get("expires_at")] for c in result.changes]
    run = ImportRun(issuer=issuer, source=snapshot.source, file=snapshot.file,
                    sha256=snapshot.sha256, generated_at=snapshot.generated_at,
                    status="pending", first_token=tokens[0] if tokens else None,
                    changes=changes, summary={"records": len(snapshot.records),
                                              **result.counts(), "unchanged": result.unchanged,
                                              "ended": len(result.ended),
                                              "invalid": len(result.invalid)},
                    created_at=now)
    session.add(run)
    session.flush()
    assert run.id is not None
    return run.id


def _finish(session: Session, run: ImportRun | None, now: datetime) -> None:
    """Record what a published run changed, in one transaction with its audit event."""
    if run is None or run.status != "pending":
        return  # settled by someone else meanwhile
    rows = [{"issuer": run.issuer, "source": run.source, "record_id": record_id,
             "entry_id": entry_id, "revision": revision, "digest": digest,
             "status": "revoked" if op == "revoke" else "active",
             "expires_at": _parse(expires_at), "updated_at": now}
            for record_id, entry_id, op, revision, digest, expires_at in run.changes]
    if rows:
        session.execute(sa.delete(ImportRecord).where(
            ImportRecord.issuer == run.issuer, ImportRecord.source == run.source,
            ImportRecord.record_id.in_([r["record_id"] for r in rows])))  # type: ignore[attr-defined]
        session.execute(sa.insert(ImportRecord), rows)
    run.status, run.changes, run.first_token = "done", [], None
    session.add(run)
    log.append(session, [log.event("import.published", actor=log.operator(),
                                   issuer=run.issuer, source=run.source, file=run.file,
                                   file_digest=f"sha256:{run.sha256}",
                                   generated_at=iso(run.generated_at), **run.summary)])


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def settle(installation: Installation, issuer: str, source: str) -> None:
    """Finish or abandon runs a crash left pending: published (its first token is in the
    public database) means finish it; not published means nothing happened."""
    with transaction(installation.db) as session:
        pending = session.execute(sa.select(ImportRun).where(
            ImportRun.issuer == issuer, ImportRun.source == source,
            ImportRun.status == "pending")).scalars().all()
        for run in pending:
            if run.first_token is None or installation.public.contains(run.first_token):
                _finish(session, run, utcnow())
            else:
                run.status, run.changes = "abandoned", []
                session.add(run)
