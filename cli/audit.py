"""Auditors' commands: ``audit checkpoint|prove|consistency|export|verify|cosign|witness-key``.

Formats: docs/auditing.md. Proofs print in the C2SP text forms (tlog-proof; the tlog-witness
``add-checkpoint`` body for consistency) or, with ``--json``, as one JSON document.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from interdict.auditlog import bundle, latest_checkpoint, log, proofs, sign_checkpoint
from interdict.auditlog.bundle import BundleInvalid, Report
from interdict.auditlog.export import export
from interdict.auditlog.note import NoteVerifier
from interdict.auditlog.verify import verify_bundle
from interdict.auditlog.witness import WitnessSigner, check_log_signature
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.output import emit_json, err, out, progress_bars, table
from interdict.errors import AuditError, UsageError
from interdict.installation import Installation
from interdict.keys import keyfile
from interdict.storage import transaction

audit_app = typer.Typer(help="Checkpoints, proofs, export and offline verification of the "
                             "audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def _say(text: str, *, to_err: bool = False) -> None:
    # Plain text: keys, origins and messages may hold brackets or colons that rich would
    # read as markup or emoji codes.
    (err if to_err else out).print(text, markup=False, emoji=False)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@audit_app.command("checkpoint")
def audit_checkpoint(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Sign a checkpoint over the log now (only if it grew since the last one) and print it."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        previous = latest_checkpoint(session)
        signed = sign_checkpoint(session, installation.log_signer, installation.home.log_origin)
        new = previous is None or previous.size != signed.size
        result = {"size": signed.size, "root": _b64(bytes(signed.root)), "new": new,
                  "note": signed.note}
    if json:
        emit_json(result)
        return
    _say(f"signed a checkpoint of size {signed.size}" if new
         else f"the log has not grown since the checkpoint of size {signed.size}", to_err=True)
    sys.stdout.write(signed.note)


@audit_app.command("prove")
def audit_prove(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(metavar="SEQ", help="The event's index in the log")],
    size: Annotated[int | None, typer.Option(
        "--size", metavar="N", help="Prove it in the tree of N events [default: the latest "
                                    "checkpoint's size]")] = None,
    json: JsonFlag = False,
) -> None:
    """Inclusion proof of event SEQ, as a C2SP tlog-proof (event bytes as its extra data)."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        proof = proofs.inclusion(session, seq, size)
    if json:
        emit_json(proof.to_json())
    else:
        sys.stdout.write(proof.to_text())


@audit_app.command("consistency")
def audit_consistency(
    ctx: typer.Context,
    old: Annotated[int, typer.Argument(metavar="OLD", help="The older tree size")],
    new: Annotated[int, typer.Argument(metavar="NEW", help="The newer tree size")],
    json: JsonFlag = False,
) -> None:
    """Consistency proof from size OLD to NEW, as a tlog-witness add-checkpoint body."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        proof = proofs.consistency(session, old, new)
    if json:
        emit_json(proof.to_json())
    else:
        sys.stdout.write(proof.to_text())


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A new (or empty) folder")],
    json: JsonFlag = False,
) -> None:
    """Write the bundle an auditor verifies offline (it holds personal data; the export is
    itself an audit event)."""
    installation = Installation.open(options(ctx).home)
    summary = export(installation, directory, actor=log.operator())
    if json:
        emit_json(summary.to_json())
        return
    _say(f"exported {summary.size} events, {summary.checkpoints} checkpoints, "
              f"{summary.entries} entries, {summary.directives} directives, "
              f"{summary.receipts} receipts and {summary.keys} keys to {summary.directory}")
    _say("the bundle holds personal data: hand it over as you would the database", to_err=True)


@audit_app.command("verify")
def audit_verify(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A bundle from audit export")],
    vkey: Annotated[str | None, typer.Option(
        "--vkey", metavar="KEY", help="The log's verifier key (string or file), obtained out of "
                                      "band [default: log.vkey from the bundle]")] = None,
    witness: Annotated[list[str] | None, typer.Option(
        "--witness", metavar="VKEY", help="A witness's verifier key (string or file); "
                                          "repeatable")] = None,
    previous: Annotated[list[Path] | None, typer.Option(
        "--previous", metavar="FILE", help="A checkpoint you kept from an earlier audit: it must "
                                           "be consistent with this bundle; repeatable")] = None,
    json: JsonFlag = False,
) -> None:
    """Check a bundle offline: every leaf and root, checkpoints, signatures, references.
    Exit status 0 only when everything holds."""
    try:
        with progress_bars(not json):
            report = verify_bundle(directory, vkey=vkey, witnesses=witness or (),
                                   previous=previous or ())
    except BundleInvalid as exc:
        _show(exc.report, json)
        raise typer.Exit(code=1) from None
    _show(report, json)


def _show(report: Report, json: bool) -> None:
    if json:
        emit_json(report.to_json())
    else:
        _say(f"log      {report.origin}, {report.size} events, root {report.root}")
        _say(f"log key  {report.log_key}\n         source: {report.log_key_source}")
        table(None, ("checked", "count"), list(report.checks.items()))
        for w in report.witnesses:
            said = (f"cosigned sizes {', '.join(map(str, w['sizes']))}" if w["cosigned"]
                    else "did not cosign any checkpoint here")
            _say(f"witness  {w['name']}: {said}")
        for warning in report.warnings:
            _say(f"warning  {warning}")
    if report.failure is not None:
        f = report.failure
        if not json:
            _say(f"FAILED   at {f.where()}")
        sys.stderr.write(f"error[{f.code}]: {f.where()}: {' '.join(f.message.split())}\n")
    elif not json:
        _say("OK       everything above holds")


def _witness_signer(key: Path, name: str | None, new: bool = False) -> WitnessSigner:
    if new:
        if name is None:
            raise UsageError("--new needs --name", code="witness.key")
        keyfile.generate(key)
    return WitnessSigner.from_file(key, name)


def _log_verifier(checkpoint: Path, log_vkey: str | None) -> tuple[NoteVerifier, str]:
    if log_vkey is None:
        beside = checkpoint.parent / bundle.LOG_VKEY
        if not beside.is_file():
            beside = checkpoint.parent.parent / bundle.LOG_VKEY  # checkpoints/<size>
        if not beside.is_file():
            raise UsageError("give the log's key with --log-vkey (no log.vkey beside the "
                             "checkpoint)", code="witness.log_key")
        log_vkey, source = beside.read_text().strip(), str(beside)
    else:
        path = Path(log_vkey)
        log_vkey, source = ((path.read_text().strip(), str(path))
                            if "+" not in log_vkey and path.is_file() else (log_vkey, "--log-vkey"))
    try:
        return NoteVerifier.from_vkey(log_vkey), source
    except AuditError as exc:
        raise UsageError(f"log key: {exc.message}", code="witness.log_key") from None


@audit_app.command("cosign")
def audit_cosign(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT_FILE",
                                               help="A signed checkpoint (e.g. DIR/checkpoint)")],
    key: Annotated[Path, typer.Option(
        "--key", metavar="FILE", help="The witness key: an Ed25519 key file (encrypted with "
                                      "INTERDICT_KEY_PASSPHRASE) or a signed-note "
                                      "PRIVATE+KEY+... file")],
    name: Annotated[str | None, typer.Option(
        "--name", metavar="NAME", help="The witness's name, e.g. travel.example/witness "
                                       "(required with a key file)")] = None,
    log_vkey: Annotated[str | None, typer.Option(
        "--log-vkey", metavar="KEY", help="The log's verifier key [default: log.vkey beside "
                                          "the checkpoint]")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", help="Write the cosigned checkpoint here (may be "
                                               "CHECKPOINT_FILE itself) [default: stdout]")] = None,
) -> None:
    """Countersign a checkpoint you have checked (C2SP tlog-cosignature, cosignature/v1).

    Run `interdict audit verify` on the bundle first: cosigning says the log you saw is
    consistent up to this checkpoint."""
    note = checkpoint.read_text()
    verifier, source = _log_verifier(checkpoint, log_vkey)
    parsed = check_log_signature(note, verifier)
    signer = _witness_signer(key, name)
    cosigned = signer.cosign(note)
    if output is None:
        sys.stdout.write(cosigned)
    else:
        output.write_text(cosigned)
    _say(f"cosigned {parsed.origin} at size {parsed.size} as {signer.name} (log key from "
              f"{source}); verify with --witness {signer.verifier.vkey()}", to_err=True)


@audit_app.command("witness-key")
def audit_witness_key(
    key: Annotated[Path, typer.Option("--key", metavar="FILE", help="The witness key file")],
    name: Annotated[str | None, typer.Option("--name", metavar="NAME",
                                             help="The witness's name")] = None,
    new: Annotated[bool, typer.Option("--new", help="Generate the key file first")] = False,
    json: JsonFlag = False,
) -> None:
    """Print a witness's verifier key (name+id+base64(0x04 || key)) for auditors to trust."""
    signer = _witness_signer(key, name, new)
    result: dict[str, Any] = {"name": signer.name, "vkey": signer.verifier.vkey()}
    if json:
        emit_json(result)
    else:
        _say(result["vkey"])
