"""Operators' view of refused entries: ``quarantine list|show``."""

from __future__ import annotations

from typing import Annotated

import typer

from interdict.cli import reports
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.output import emit_json, out, table
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
                    json: JsonFlag = False) -> None:
    """One refused entry, with the raw bytes as published."""
    row = reports.quarantined_one(Installation.open(options(ctx).home), seq)
    if row is None:
        raise UsageError(f"nothing from public seq {seq} is in quarantine",
                         code="quarantine.unknown")
    if json:
        emit_json(row)
        return
    for key in ("seq", "reason", "detail", "at", "released"):
        out.print(f"{key:<9}{row[key]}")
    out.print(f"raw      {row['raw']}")
