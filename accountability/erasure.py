"""Erasure after retention: once an entry has been lifted for the retention period, every
copy of its personal data interdict holds is replaced by a tombstone (storage/tombstones.py).

What is erased, per entry (revoked or expired, ``entry.updated_at`` + retention passed):
every revision the issuer signed, every directive sent for it and every agency receipt for
those directives (a rejection's detail may name the person, and so may a directive's
``last_error``), the quarantined bytes that claim to be a revision of it (up to the one
erased: a later one waiting in quarantine is not its), and the published
copies of all of these in the public database (unless the installation says it may not
write there: ``"erase_published": false`` in settings.json). Quarantined bytes that cannot be
attributed to an entry still to be kept are erased by age alone; so is the first token an
abandoned import run kept. Digests, ids, statuses and dates stay, so lift latency,
statistics and the audit log keep working.

An entry is *held*, not erased, while an agency may still hold the restriction: a revision
not yet routed, or, for some agency, a latest directive that is not a delivered lift
(pending, dead-lettered, rejected). Erasing then would destroy the very lift that must still
go out. An agency that received a lift but did not confirm deletion in its receipt
(``erased: true``, receipt v2) does not hold erasure back: interdict erases its own copy and
names the agency as unconfirmed, in the report and in the ``entry.erased`` event, for an
operator to chase.

The candidates and the quarantine are read without the write lock (storage.reading); each
entry is then erased in one short transaction, with its audit events (``document.erased`` per
document, ``entry.erased`` per entry): a crash leaves every entry fully erased or untouched,
and a rerun finishes the rest. The public database is another database: its copies are
erased just before the entry's transaction commits, so a crash in between leaves only the
public copy erased, and the rerun completes the entry.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session

from interdict.accountability import policy
from interdict.accountability.timing import iso
from interdict.auditlog import log
from interdict.directives.outbox import payload
from interdict.directives.receipts import FLAG_CODE_KEPT, flag_of
from interdict.installation import Installation
from interdict.keys import jws
from interdict.storage import reading, transaction, utcnow
from interdict.storage import tombstones as tomb
from interdict.storage.models import (
    Agency,
    Directive,
    EntryRevision,
    EntryState,
    ImportRun,
    QuarantinedEntry,
    Receipt,
)

ERASED = "document.erased"
ENTRY_ERASED = "entry.erased"
REASON = "retention"
ERASED_DETAIL = "erased after retention"
LIFTED = ("revoked", "expired")
# Directives that were never sent, or dropped before sending: they say nothing about what an
# agency holds.
NOT_HELD = ("shadow", "withheld", "superseded", "cancelled")
BATCH = 500


@dataclass
class ErasureReport:
    """What a run erased (or, dry, would erase): counts only, never personal data."""

    now: datetime
    retention_days: int
    dry_run: bool
    entries: int = 0
    documents: Counter[str] = field(default_factory=Counter)  # kind -> count
    published: int = 0  # copies erased in the public database
    held: Counter[str] = field(default_factory=Counter)  # reason -> entries
    held_by_agency: Counter[str] = field(default_factory=Counter)
    unconfirmed: Counter[str] = field(default_factory=Counter)  # agency -> entries
    quarantine_by_age: int = 0

    @property
    def cutoff(self) -> datetime:
        return self.now - timedelta(days=self.retention_days)

    @property
    def erased_anything(self) -> bool:
        return bool(self.documents) and not self.dry_run

    def to_json(self) -> dict[str, Any]:
        kinds = ("entry", "directive", "receipt", "quarantine", "import")
        return {"now": iso(self.now), "dry_run": self.dry_run,
                "retention_days": self.retention_days, "lifted_before": iso(self.cutoff),
                "entries": self.entries,
                "documents": {k: self.documents.get(k, 0) for k in kinds},
                "published": self.published, "quarantine_by_age": self.quarantine_by_age,
                "held": dict(sorted(self.held.items())),
                "held_by_agency": dict(sorted(self.held_by_agency.items())),
                "unconfirmed": dict(sorted(self.unconfirmed.items()))}


def erase(installation: Installation, *, now: datetime | None = None, dry_run: bool = False,
          actor: str = log.ENGINE) -> ErasureReport:
    """Erase every entry lifted longer ago than the policy's retention, then quarantined
    bytes and import tokens by age. ``dry_run`` decides the same and writes nothing."""
    now = now or utcnow()
    # Reading is done without the write lock (a quarantine scan can be long); each entry then
    # takes it for one short transaction that re-checks its candidate under the lock.
    with reading(installation.db) as session:
        report = ErasureReport(now, policy.active(session).retention_days, dry_run)
        candidates = _candidates(session, report.cutoff)
        attributed, by_age = _quarantine(session, candidates, report.cutoff)
    for key, revision in candidates.items():
        _erase_entry(installation, key, revision, attributed.get(key, []), report, actor)
    _erase_quarantine_by_age(installation, by_age, report, actor)
    _erase_import_tokens(installation, report, actor)
    return report


def _candidates(session: Session, cutoff: datetime) -> dict[tuple[str, str], int]:
    """Entries lifted before ``cutoff`` whose current revision is not erased yet, with that
    revision."""
    rows = session.execute(
        sa.select(EntryState.issuer, EntryState.entry_id, EntryState.revision)
        .join(EntryRevision, sa.and_(EntryRevision.issuer == EntryState.issuer,
                                     EntryRevision.entry_id == EntryState.entry_id,
                                     EntryRevision.revision == EntryState.revision))
        .where(EntryState.status.in_(LIFTED),  # type: ignore[attr-defined]
               EntryState.updated_at <= cutoff,  # type: ignore[operator]
               tomb.present(EntryRevision.jws))
        .order_by(EntryState.issuer, EntryState.entry_id))
    return {(r.issuer, r.entry_id): r.revision for r in rows}


# -- one entry ----------------------------------------------------------------------------


@dataclass
class _Found:
    """One entry's documents still present, read under lock in its transaction."""

    revisions: list[Any]
    directives: list[Any]
    receipts: dict[str, Any]  # directive_id ->
    quarantine: list[Any]


def _erase_entry(installation: Installation, key: tuple[str, str], revision: int,
                 quarantine_ids: list[int], report: ErasureReport, actor: str) -> None:
    with transaction(installation.db) as session:
        state = session.execute(sa.select(EntryState).where(
            EntryState.issuer == key[0], EntryState.entry_id == key[1])
            .with_for_update()).scalar_one_or_none()
        if (state is None or state.status not in LIFTED or state.updated_at > report.cutoff
                or state.revision != revision):
            return  # relisted (or changed) since the candidates were read
        found = _read(session, key, quarantine_ids)
        unconfirmed = _settled(session, found, report)
        if unconfirmed is None:
            return
        report.entries += 1
        report.unconfirmed.update(unconfirmed)
        events = _events(key, state, found, unconfirmed, report.retention_days, actor)
        report.documents.update(e["refs"]["kind"] for e in events if e["action"] == ERASED)
        if report.dry_run:
            return
        report.published += _erase_published(installation, found, report.now)
        seqs = log.append(session, events)
        _write_tombstones(session, found, list(seqs), report.now)


def _read(session: Session, key: tuple[str, str], quarantine_ids: list[int]) -> _Found:
    issuer, entry_id = key
    revisions = list(session.execute(
        sa.select(EntryRevision.id, EntryRevision.digest, EntryRevision.jws,
                  EntryRevision.routed, EntryRevision.public_seq)
        .where(EntryRevision.issuer == issuer, EntryRevision.entry_id == entry_id,
               tomb.present(EntryRevision.jws))
        .order_by(EntryRevision.revision).with_for_update()))
    directives = list(session.execute(
        sa.select(Directive.id, Directive.directive_id, Directive.agency, Directive.action,
                  Directive.status, Directive.jws, Directive.last_error)
        .where(Directive.issuer == issuer, Directive.entry_id == entry_id)
        .order_by(Directive.id).with_for_update()))  # type: ignore[arg-type]
    receipts = {r.directive_id: r for r in session.execute(
        sa.select(Receipt.directive_id, Receipt.agency, Receipt.jws)
        .where(Receipt.directive_id.in_([d.directive_id for d in directives]))  # type: ignore[attr-defined]
        .with_for_update())} if directives else {}
    quarantine = [q for q in session.execute(
        sa.select(QuarantinedEntry.id, QuarantinedEntry.public_seq, QuarantinedEntry.raw)
        .where(QuarantinedEntry.id.in_(quarantine_ids))  # type: ignore[union-attr]
        .with_for_update()) if not tomb.is_tombstone(q.raw)] if quarantine_ids else []
    return _Found(revisions, directives, receipts, quarantine)


def _settled(session: Session, found: _Found, report: ErasureReport) -> list[str] | None:
    """The agencies that did not confirm deletion, or None when the entry must be held
    because an agency may still hold the restriction."""
    if any(not r.routed for r in found.revisions):
        report.held["not_routed"] += 1
        return None
    offboarded = set(session.execute(sa.select(Agency.id).where(
        Agency.status == "offboarded")).scalars())
    latest: dict[str, Any] = {}
    for d in found.directives:
        if d.status not in NOT_HELD:
            latest[d.agency] = d
    held: dict[str, str] = {}
    unconfirmed = []
    for agency, d in sorted(latest.items()):
        if agency in offboarded:  # nothing more can reach it: its holding was logged then
            unconfirmed.append(agency)
        elif d.action != "lift" or d.status != "delivered":
            held[agency] = f"{d.action}_{d.status}" if d.action == "lift" else "not_lifted"
        elif not _confirmed(found.receipts.get(d.directive_id)):
            unconfirmed.append(agency)
    if held:
        report.held[sorted(held.values())[0]] += 1
        report.held_by_agency.update(held.keys())
        return None
    return unconfirmed


def _confirmed(receipt: Any) -> bool:
    """The agency's lift receipt says it deleted what it held (receipt v2 ``erased``)."""
    return receipt is not None and payload(receipt.jws).get("erased") is True


def _events(key: tuple[str, str], state: EntryState, found: _Found, unconfirmed: list[str],
            retention_days: int, actor: str) -> list[dict[str, Any]]:
    """``document.erased`` per document (in the order _write_tombstones takes them), then
    the entry's ``entry.erased``."""
    issuer, entry_id = key
    common = {"actor": actor, "issuer": issuer, "entry_id": entry_id, "reason": REASON}
    events = [log.event(ERASED, kind="entry", digest=r.digest, **common)
              for r in found.revisions]
    events += [log.event(ERASED, kind="directive", digest=jws.digest(d.jws),
                         directive_id=d.directive_id, agency=d.agency, **common)
               for d in found.directives if not tomb.is_tombstone(d.jws)]
    events += [log.event(ERASED, kind="receipt", digest=jws.digest(r.jws),
                         directive_id=r.directive_id, agency=r.agency, **common)
               for r in found.receipts.values() if not tomb.is_tombstone(r.jws)]
    events += [log.event(ERASED, kind="quarantine", digest=jws.digest(bytes(q.raw)),
                         public_seq=q.public_seq, **common) for q in found.quarantine]
    counts = Counter(e["refs"]["kind"] for e in events)
    events.append(log.event(
        ENTRY_ERASED, actor=actor, issuer=issuer, entry_id=entry_id, status=state.status,
        lifted_at=iso(state.updated_at), retention_days=retention_days,
        entries=counts["entry"], directives=counts["directive"], receipts=counts["receipt"],
        quarantine=counts["quarantine"], unconfirmed=",".join(unconfirmed) or None,
        outcome="unconfirmed" if unconfirmed else "ok"))
    return events


def _write_tombstones(session: Session, found: _Found, seqs: list[int], now: datetime) -> None:
    it = iter(seqs)

    def marker(kind: str, digest: str, kept: dict[str, Any] | None = None) -> str:
        return tomb.make(kind=kind, digest=digest, erased_at=now, reason=REASON,
                         seq=next(it), kept=kept)

    revisions = [{"id": r.id, "jws": marker("entry", r.digest)} for r in found.revisions]
    directives = []
    for d in found.directives:
        if tomb.is_tombstone(d.jws):
            continue
        sent = payload(d.jws)
        directives.append({"id": d.id, "last_error": ERASED_DETAIL if d.last_error else None,
                           "jws": marker("directive", jws.digest(d.jws), {
                               "action": d.action, "effective_from": sent["effective_from"]})})
    receipts = []
    for r in found.receipts.values():
        if tomb.is_tombstone(r.jws):
            continue
        signed = payload(r.jws)
        kept: dict[str, Any] = {k: signed[k] for k in ("status", "at", "erased", "action")
                                if k in signed}
        flag = flag_of(signed)
        if flag and isinstance(flag.get("code"), str):  # the code, never the detail
            kept[FLAG_CODE_KEPT] = flag["code"]
        receipts.append({"directive_id": r.directive_id,
                         "jws": marker("receipt", jws.digest(r.jws), kept)})
    quarantine = [{"id": q.id, "detail": ERASED_DETAIL,
                   "raw": marker("quarantine", jws.digest(bytes(q.raw))).encode()}
                  for q in found.quarantine]
    for model, rows in ((EntryRevision, revisions), (Directive, directives),
                        (Receipt, receipts), (QuarantinedEntry, quarantine)):
        if rows:
            session.execute(sa.update(model), rows)


# -- the public database ------------------------------------------------------------------


def _erase_published(installation: Installation, found: _Found, now: datetime) -> int:
    copies = [(r.public_seq, r.jws) for r in found.revisions]
    copies += [(q.public_seq, bytes(q.raw).decode("utf-8", "surrogateescape"))
               for q in found.quarantine]
    return _erase_copies(installation, copies, now)


def _erase_copies(installation: Installation, copies: Sequence[tuple[int, str]],
                  now: datetime) -> int:
    """Replace the published rows that still hold exactly these bytes at these seqs."""
    if not copies or installation.home.settings().get("erase_published") is False:
        return 0
    return installation.public.erase([
        (seq, token, tomb.make(kind="entry", digest=jws.digest(token), erased_at=now,
                               reason=REASON)) for seq, token in copies])


# -- quarantine and import runs, by age ---------------------------------------------------


def _claimed_entry(raw: bytes) -> tuple[str, str, int | None] | None:
    """The (issuer, entry_id, revision) unverified bytes claim to be a revision of, if any
    (revision None when they name none, or not as a number)."""
    try:
        parts = raw.split(b".")
        body = parts[1] + b"=" * (-len(parts[1]) % 4)
        claimed = orjson.loads(base64.urlsafe_b64decode(body))
    except (IndexError, ValueError):
        return None
    if not isinstance(claimed, dict):
        return None
    issuer, entry_id = claimed.get("issuer"), claimed.get("entry_id")
    revision = claimed.get("revision")
    if not isinstance(revision, int) or isinstance(revision, bool):
        revision = None
    if isinstance(issuer, str) and isinstance(entry_id, str):
        return issuer, entry_id, revision
    return None


def _quarantine(session: Session, candidates: dict[tuple[str, str], int], cutoff: datetime,
                ) -> tuple[dict[tuple[str, str], list[int]], list[int]]:
    """Quarantined rows not erased yet: those that belong to an entry being erased (by
    entry: they claim one of the revisions it has, at most its current one), and those whose
    time is up on their own (by age): refused before ``cutoff`` and naming no entry
    interdict still keeps (none at all, one it never accepted, or one already erased).

    A row claiming a later revision (a re-imposition waiting in quarantine for its key, say)
    is not the erased entry's: it is left to the by-age path."""
    attributed: dict[tuple[str, str], list[int]] = {}
    aged: list[tuple[int, tuple[str, str] | None]] = []
    rows = session.execute(
        sa.select(QuarantinedEntry.id, QuarantinedEntry.raw, QuarantinedEntry.at)
        .where(QuarantinedEntry.detail != ERASED_DETAIL)
        .order_by(QuarantinedEntry.id)  # type: ignore[arg-type]
        .execution_options(yield_per=BATCH))
    for row in rows:
        raw = bytes(row.raw)
        if tomb.is_tombstone(raw):
            continue
        claimed = _claimed_entry(raw)
        key = claimed[:2] if claimed is not None else None
        if (claimed is not None and key in candidates and claimed[2] is not None
                and claimed[2] <= candidates[claimed[:2]]):
            attributed.setdefault(claimed[:2], []).append(row.id)
        elif row.at <= cutoff:
            aged.append((row.id, key))
    kept = _entries_kept(session, {key for _, key in aged if key is not None})
    return attributed, [i for i, key in aged if key is None or key not in kept]


def _entries_kept(session: Session, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of these entries, those interdict still holds personal data of (not erased yet)."""
    kept: set[tuple[str, str]] = set()
    ordered = sorted(keys)
    for start in range(0, len(ordered), BATCH):
        chunk = ordered[start:start + BATCH]
        rows = session.execute(
            sa.select(EntryState.issuer, EntryState.entry_id)
            .join(EntryRevision, sa.and_(EntryRevision.issuer == EntryState.issuer,
                                         EntryRevision.entry_id == EntryState.entry_id,
                                         EntryRevision.revision == EntryState.revision))
            .where(EntryState.entry_id.in_({e for _, e in chunk}),  # type: ignore[attr-defined]
                   tomb.present(EntryRevision.jws)))
        kept.update((r.issuer, r.entry_id) for r in rows if (r.issuer, r.entry_id) in keys)
    return kept


def _erase_quarantine_by_age(installation: Installation, ids: Sequence[int],
                             report: ErasureReport, actor: str) -> None:
    for start in range(0, len(ids), BATCH):
        with transaction(installation.db) as session:
            rows = [q for q in session.execute(
                sa.select(QuarantinedEntry.id, QuarantinedEntry.public_seq,
                          QuarantinedEntry.raw)
                .where(QuarantinedEntry.id.in_(ids[start:start + BATCH]))  # type: ignore[union-attr]
                .with_for_update()) if not tomb.is_tombstone(q.raw)]
            report.quarantine_by_age += len(rows)
            report.documents["quarantine"] += len(rows)
            if report.dry_run or not rows:
                continue
            report.published += _erase_copies(installation, [
                (q.public_seq, bytes(q.raw).decode("utf-8", "surrogateescape"))
                for q in rows], report.now)
            seqs = log.append(session, [log.event(
                ERASED, actor=actor, kind="quarantine", digest=jws.digest(bytes(q.raw)),
                public_seq=q.public_seq, reason=f"{REASON}: refused and unattributed")
                for q in rows])
            session.execute(sa.update(QuarantinedEntry), [
                {"id": q.id, "detail": ERASED_DETAIL,
                 "raw": tomb.make(kind="quarantine", digest=jws.digest(bytes(q.raw)),
                                  erased_at=report.now, reason=REASON, seq=seq).encode()}
                for q, seq in zip(rows, seqs, strict=True)])


def _erase_import_tokens(installation: Installation, report: ErasureReport,
                         actor: str) -> None:
    """A settled import run keeps its first token only when it was abandoned (the token of a
    publication that never happened, with the first record's personal data): erase it."""
    with transaction(installation.db) as session:
        runs = list(session.execute(
            sa.select(ImportRun.id, ImportRun.first_token)
            .where(ImportRun.status != "pending",
                   ImportRun.first_token.is_not(None),  # type: ignore[union-attr]
                   ImportRun.created_at <= report.cutoff)  # type: ignore[operator]
            .with_for_update()))
        if not runs:
            return
        report.documents["import"] += len(runs)
        if report.dry_run:
            return
        log.append(session, [log.event(ERASED, actor=actor, kind="import",
                                       digest=jws.digest(r.first_token), run=r.id,
                                       reason=REASON) for r in runs])
        session.execute(sa.update(ImportRun), [{"id": r.id, "first_token": None}
                                               for r in runs])

