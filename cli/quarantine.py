"""Operators' view of refused entries: ``quarantine list|show|retry``."""

from __future__ import annotations

from typing import Annotated

import typer

from interdict.accountability import reads
from interdict.cli import reports
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.output import emit_json, out, table
from interdict.entries import store
from interdict.errors import UsageError
from interdict.installation import Installation

quarantine_app = typer.Typer(help="Entries refused at ingest, with their reasons.",
                             no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Every refused entry: public seq, reason code, detail."""
    rows = reports.quarantined(Installation.open(options(ctx).home))
    if json:
        emit_json([{k: r[k] for k in ("seq", "reason", "detail")} for r in rows])
    elif rows:
        table(None, ("seq", "reason", "detail"), [(r["seq"], r["reason"], r["detail"])
                                                  for r in rows])
    else:
        out.print("quarantine is empty")


@quarantine_app.command("show")
def quarantine_show(ctx: typer.Context, seq: Annotated[int, typer.Argument(metavar="SEQ")],
                    json: JsonFlag = False,
                    purpose: Annotated[str | None, typer.Option(
                        "--purpose", metavar="TEXT", help="Why you read it (a ticket, not a "
                        "name): the raw entry holds personal data, so the read is audited "
                        "(quarantine.read).")] = None) -> None:
    """One refused entry, with the raw bytes as published."""
    installation = Installation.open(options(ctx).home)
    row = reports.quarantined_one(installation, seq)
    if row is None:
        raise UsageError(f"nothing from public seq {seq} is in quarantine",
                         code="quarantine.unknown")
    reads.record(installation, "quarantine.read", purpose, seq=seq)
    if json:
        emit_json(row)
        return
    for key in ("seq", "reason", "detail", "at", "released"):
        out.print(f"{key:<9}{row[key]}")
    out.print(f"raw      {row['raw']}")


@quarantine_app.command("retry")
def quarantine_retry(
    ctx: typer.Context,
    seqs: Annotated[list[int] | None, typer.Argument(
        metavar="SEQ", help="Public seqs to retry [default: every quarantined entry]")]
    = None,
    json: JsonFlag = False,
) -> None:
    """Examine quarantined entries again under today's trust store (after an issuer key was
    added late, say). Accepted ones leave quarantine and go out with the next sync; the others
    stay, with the reason they are refused for now."""
    installation = Installation.open(options(ctx).home)
    results = store.retry(installation.db, installation.public, seqs or None)
    rows = [{"seq": r.seq, "outcome": r.outcome, "reason": r.reason, "was": r.previous,
             "detail": r.detail} for r in results]
    if json:
        emit_json(rows)
        return
    if not rows:
        out.print("nothing to retry: quarantine is empty" if not seqs else
                  "nothing to retry: none of these seqs is in quarantine")
        return
    table(None, ("seq", "outcome", "reason", "was", "detail"),
          [(r["seq"], r["outcome"], r["reason"] or "", r["was"], r["detail"]) for r in rows])
    released = sum(r.outcome == "released" for r in results)
    out.print(f"{released} released, {len(results) - released} still in quarantine"
              + ("; `interdict sync` delivers the released ones" if released else ""))
