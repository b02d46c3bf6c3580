"""Offline verification of an audit bundle: reads only the bundle (and keys given to it).

The steps, in order; the first that fails ends the check with a cause code and a position:

1. the log's verifier key: ``--vkey`` from out of band, else ``log.vkey`` from the bundle;
2. every checkpoint (``checkpoint``, ``checkpoints/*``, and ``--previous`` ones the auditor
   kept) opens under that key, for the key's origin, and none is larger than ``checkpoint``;
3. every line of ``events.jsonl`` is hashed as a leaf, the root recomputed, and it equals the
   latest checkpoint's over exactly as many events;
4. every other checkpoint's root equals the root of that many first events: it is consistent
   with the latest (computed from the leaves, which is stronger than a proof);
5. witness cosignatures on any of these checkpoints, for the witness keys given;
6. keys and documents (:mod:`interdict.auditlog.documents`).

Step 3 is the hot loop, and parses nothing: the tree is built chunk by chunk with
:func:`interdict.auditlog.merkle.root_of`, level by level, so memory stays flat. Only when the
size or root is wrong does a second pass (:func:`diagnose`) find the first line that is not the
event with its own index as ``seq`` (a removed, inserted, reordered or garbled event), checking
the canonical ending ``,"seq":<i>}`` and parsing only lines without it.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from interdict import progress
from interdict.auditlog import bundle, documents
from interdict.auditlog.bundle import Report
from interdict.auditlog.merkle import EMPTY_ROOT, CompactRange, node_hash, root_of
from interdict.auditlog.note import Checkpoint, NoteVerifier, open_note
from interdict.auditlog.witness import WitnessVerifier, cosigned_by
from interdict.errors import AuditError, UsageError

__all__ = ["Scan", "scan_events", "verify_bundle"]

_CHUNK = 1 << 16  # leaves hashed into one perfect subtree at a time


@dataclass(frozen=True)
class _Signed:
    label: str  # where it came from, for messages
    note: bytes
    checkpoint: Checkpoint


@dataclass(frozen=True)
class Scan:
    size: int
    root: bytes
    prefix_roots: dict[int, bytes]  # root of the first n leaves, for each n asked for


def verify_bundle(directory: Path, *, vkey: str | None = None,
                  witnesses: Sequence[str] = (), previous: Sequence[Path] = (),
                  check_documents: bool = True) -> Report:
    """Check a bundle; return the report of what held.

    Raises:
        BundleInvalid: the first check that failed (``.report`` has the counts up to there).
        UsageError: ``verify.vkey`` / ``witness.key`` for an unusable key given by the caller,
            ``verify.no_bundle`` when ``directory`` is not a bundle.
    """
    report = Report(bundle=str(directory))
    witness_keys = [_witness(w) for w in witnesses]
    _require_files(directory, report)
    verifier = _log_verifier(directory, vkey, report)  # 1.
    latest, history = _checkpoints(directory, verifier, previous, report)  # 2.
    started = _clocks()
    with progress.phase("events", latest.checkpoint.size) as bar:  # 3.
        scan = scan_events(directory / bundle.EVENTS, report, bar.advance,
                           {s.checkpoint.size for s in history})
    _timed(report, "log", started)
    report.count("events: leaf hashed", scan.size)
    _compare(scan, directory / bundle.EVENTS, latest, history, report)  # 3-4.
    _witnesses([latest, *history], witness_keys, report)  # 5.
    if check_documents:  # 6.
        started = _clocks()
        documents.check(directory, report)
        _timed(report, "documents", started)
    return report


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _timed(report: Report, phase: str, started: tuple[float, float]) -> None:
    # CPU time beside wall time: on a shared machine it is what one core would have taken.
    wall, cpu = _clocks()
    report.timings[phase] = wall - started[0]
    report.timings[f"{phase}_cpu"] = cpu - started[1]


# --------------------------------------------------------------------------------------------
# 1-2. Keys and checkpoints
# --------------------------------------------------------------------------------------------


def _require_files(directory: Path, report: Report) -> None:
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a folder: give the folder `interdict audit "
                         "export` wrote", code="verify.no_bundle")
    for name in bundle.FILES:
        path = directory / name
        if not (path.is_dir() if name == bundle.CHECKPOINTS else path.is_file()):
            report.fail("bundle.missing_file", f"the bundle has no {name}", file=name)


def _witness(vkey: str) -> WitnessVerifier:
    try:
        return WitnessVerifier.from_vkey(_read_key(vkey))
    except AuditError as exc:
        raise UsageError(f"--witness {vkey!r}: {exc.message}", code="witness.key") from None


def _read_key(value: str) -> str:
    """A key string, or the path of a file that holds one."""
    path = Path(value)
    if "+" not in value and path.is_file():
        return path.read_text().strip()
    return value.strip()


def _log_verifier(directory: Path, vkey: str | None, report: Report) -> NoteVerifier:
    bundled = (directory / bundle.LOG_VKEY).read_text(errors="replace").strip()
    if vkey is not None:
        try:
            verifier = NoteVerifier.from_vkey(_read_key(vkey))
        except AuditError as exc:
            raise UsageError(f"--vkey: {exc.message}", code="verify.vkey") from None
        report.log_key_source = "--vkey (given out of band)"
        if bundled != verifier.vkey():
            report.warnings.append("the bundle's log.vkey is not the key given with --vkey")
    else:
        try:
            verifier = NoteVerifier.from_vkey(bundled)
        except AuditError as exc:
            report.fail(exc.code, f"log.vkey: {exc.message}", file=bundle.LOG_VKEY)
        report.log_key_source = ("log.vkey from the bundle (it vouches only for itself: "
                                 "pass --vkey with the key you got out of band)")
    report.log_key = verifier.vkey()
    report.origin = verifier.name
    return verifier


def _open(data: bytes, label: str, verifier: NoteVerifier, report: Report) -> _Signed:
    try:
        text, _ = open_note(data, [verifier])
        checkpoint = Checkpoint.from_text(text)
    except AuditError as exc:
        report.fail(exc.code, exc.message, file=label)
    if checkpoint.origin != verifier.name:
        report.fail("checkpoint.origin", f"checkpoint is for origin {checkpoint.origin!r}, "
                    f"not the log key's {verifier.name!r}", file=label)
    return _Signed(label, data, checkpoint)


def _checkpoints(directory: Path, verifier: NoteVerifier, previous: Sequence[Path],
                 report: Report) -> tuple[_Signed, list[_Signed]]:
    latest = _open((directory / bundle.CHECKPOINT).read_bytes(), bundle.CHECKPOINT, verifier,
                   report)
    report.count("checkpoint signatures")
    history: list[_Signed] = []
    for path in sorted((directory / bundle.CHECKPOINTS).iterdir(),
                       key=lambda p: (len(p.name), p.name)):
        label = f"{bundle.CHECKPOINTS}/{path.name}"
        signed = _open(path.read_bytes(), label, verifier, report)
        if str(signed.checkpoint.size) != path.name:
            report.fail("checkpoint.name", f"holds a checkpoint of size "
                        f"{signed.checkpoint.size}: each file is named for its size", file=label)
        history.append(signed)
        report.count("checkpoint signatures")
    for path in previous:
        history.append(_open(path.read_bytes(), str(path), verifier, report))
        report.count("checkpoint signatures")
    for signed in history:
        if signed.checkpoint.size > latest.checkpoint.size:
            report.fail("checkpoint.rollback", f"checkpoint has size {latest.checkpoint.size}, "
                        f"but {signed.label} (size {signed.checkpoint.size}) is larger: the "
                        "latest checkpoint was rolled back", file=bundle.CHECKPOINT)
    report.size = latest.checkpoint.size
    report.root = _b64(latest.checkpoint.root_hash)
    return latest, history


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------------------------
# 3. Leaves and roots
# --------------------------------------------------------------------------------------------


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The root over perfect subtrees, left to right, none larger than the one before."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def diagnose(path: Path, report: Report) -> None:
    """Find the first line that is not the event its position says, and fail there.

    Only run once the root or the size did not match: integrity is the root's job, this
    only names the place, so the hot loop does not pay for it.
    """
    seq = 0
    for lines in bundle.LineReader(path).blocks():
        for line in lines:
            if not line.endswith(b',"seq":%d}' % seq):
                _check_seq_slowly(line, seq, report)
            seq += 1


def _check_seq_slowly(line: bytes, seq: int, report: Report) -> None:
    # Not the canonical form interdict writes: parse it to say exactly what is wrong.
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        report.fail("event.malformed", f"not a JSON object ({exc})", file=bundle.EVENTS,
                    line=seq + 1, seq=seq)
    if not isinstance(event, dict):
        report.fail("event.malformed", "not a JSON object", file=bundle.EVENTS, line=seq + 1,
                    seq=seq)
    if event.get("seq") != seq:
        report.fail("event.seq_mismatch", f"line {seq + 1} must be the event with seq {seq}, "
                    f"it carries seq {event.get('seq')!r}: events were removed, inserted or "
                    "reordered", file=bundle.EVENTS, line=seq + 1, seq=seq)


def scan_events(path: Path, report: Report, advance: Callable[[int], None] = lambda n: None,
                sizes: Collection[int] = (), chunk: int = _CHUNK) -> Scan:
    """Hash every line of ``events.jsonl`` as a leaf and return the root, with the root of the
    first n leaves for each n in ``sizes``.

    Chunks of ``chunk`` leaves (a power of two) become perfect subtrees, kept as a compact range
    of chunk roots; a size that ends inside a chunk folds that range with the chunk's part.
    """
    sha = hashlib.sha256
    chunks = CompactRange()  # its "leaves" are chunk roots
    wanted = sorted(sizes)
    prefix: dict[int, bytes] = {0: EMPTY_ROOT} if 0 in sizes else {}
    pending: list[bytes] = []
    folded = 0  # leaves inside `chunks`
    seen = 0

    def fold_pending(count: int) -> None:
        nonlocal folded
        part = pending[:count]
        while wanted and wanted[0] <= folded + count:
            size = wanted.pop(0)
            if size > folded:
                prefix[size] = _fold([*chunks.hashes, root_of(part[:size - folded])])
        if count == chunk:
            chunks.append(root_of(part))
            folded += count
        del pending[:count]

    reader = bundle.LineReader(path)
    for lines in reader.blocks():
        pending.extend([sha(b"\x00" + line).digest() for line in lines])
        seen += len(lines)
        while len(pending) >= chunk:
            fold_pending(chunk)
        advance(len(lines))
    if reader.unterminated:
        report.fail("event.malformed", "the last line does not end with a newline (the file "
                    "was cut short?)", file=bundle.EVENTS, line=seen + 1, seq=seen)
    tail = root_of(pending) if pending else None
    if pending:
        fold_pending(len(pending))
    if seen == 0:
        root = EMPTY_ROOT
    else:
        root = _fold([*chunks.hashes, *([tail] if tail is not None else [])])
    return Scan(seen, root, prefix)


def _compare(scan: Scan, path: Path, latest: _Signed, history: list[_Signed],
             report: Report) -> None:
    size = latest.checkpoint.size
    if scan.size != size or scan.root != latest.checkpoint.root_hash:
        diagnose(path, report)
    if scan.size < size:
        report.fail("log.truncated", f"the checkpoint covers {size} events but the file has "
                    f"{scan.size}: events from seq {scan.size} on were removed",
                    file=bundle.EVENTS, line=scan.size + 1, seq=scan.size)
    if scan.size > size:
        report.fail("log.uncovered", f"{scan.size - size} events after the checkpoint's "
                    f"{size}: no signature covers them (appended or forged)",
                    file=bundle.EVENTS, line=size + 1, seq=size)
    if scan.root != latest.checkpoint.root_hash:
        _root_mismatch(scan, latest, history, report)
    report.count("root equals the checkpoint's")
    for signed in history:
        if scan.prefix_roots[signed.checkpoint.size] != signed.checkpoint.root_hash:
            report.fail("checkpoint.inconsistent", f"the first {signed.checkpoint.size} events "
                        "hash to another root: this checkpoint is not consistent with the "
                        "latest one (the log was rewritten after it was signed)",
                        file=signed.label)
        report.count("checkpoints consistent with the latest")


def _root_mismatch(scan: Scan, latest: _Signed, history: list[_Signed],
                   report: Report) -> None:
    """Name the first events that can be wrong: older checkpoints that still agree with the
    file bound the change from below, the first one that disagrees from above."""
    agree, first_bad = 0, latest.checkpoint.size
    for signed in sorted(history, key=lambda s: s.checkpoint.size):
        if scan.prefix_roots[signed.checkpoint.size] == signed.checkpoint.root_hash:
            agree = max(agree, signed.checkpoint.size)
        else:
            first_bad = min(first_bad, signed.checkpoint.size)
            break
    report.fail("log.root_mismatch", f"the events do not hash to the root of the signed "
                f"checkpoint (size {latest.checkpoint.size}): an event in seq {agree}.."
                f"{first_bad - 1} was changed (older checkpoints agree up to size {agree})",
                file=bundle.EVENTS, line=agree + 1, seq=agree)


# --------------------------------------------------------------------------------------------
# 5. Witnesses
# --------------------------------------------------------------------------------------------


def _witnesses(signed: list[_Signed], witnesses: list[WitnessVerifier], report: Report) -> None:
    if not witnesses:
        return
    seen: dict[str, list[tuple[int, int]]] = {w.vkey(): [] for w in witnesses}
    for item in signed:
        try:
            found = cosigned_by(item.note.decode("utf-8"), witnesses)
        except AuditError as exc:
            report.fail(exc.code, exc.message, file=item.label)
        for cosignature in found:
            seen[cosignature.vkey].append((item.checkpoint.size, cosignature.timestamp))
            report.count("cosignatures verified")
    for witness in witnesses:
        sizes = sorted(set(seen[witness.vkey()]))
        report.witnesses.append({
            "name": witness.name, "vkey": witness.vkey(), "cosigned": bool(sizes),
            "sizes": sorted({s for s, _ in sizes}),
            "largest": max((s for s, _ in sizes), default=None),
            "covers_latest": any(s == report.size for s, _ in sizes)})
