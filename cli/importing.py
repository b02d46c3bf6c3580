"""Issuers' importers: ``import un-xml FILE --issuer ID`` and ``import us-csl FILE --issuer ID``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from interdict.cli.app import JsonFlag, app, options
from interdict.cli.issuing import parse_timestamp
from interdict.cli.output import emit_json, err, out, progress_bars, table
from interdict.importers import DEFAULT_VALID_FOR, Snapshot, import_snapshot, un_xml, us_csl
from interdict.installation import Installation

import_app = typer.Typer(help="Turn the sanction lists an issuer already has into signed "
                              "entries, publishing only what changed since the last import.",
                         no_args_is_help=True)
app.add_typer(import_app, name="import")

FileArg = Annotated[Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False,
                                         help="The list as published")]
IssuerOpt = Annotated[str, typer.Option("--issuer", metavar="ID",
                                        help="The issuer whose local key signs the entries")]
ShrinkOpt = Annotated[bool, typer.Option(
    "--allow-shrink", help="Publish the revocations even when the snapshot drops more records "
                           "than the shrink guard allows (the delistings are real)")]
ValidForOpt = Annotated[int, typer.Option(
    "--valid-for", metavar="DAYS", help="How long each entry lasts; a later import renews it "
                                        "when less than a quarter is left")]
GeneratedOpt = Annotated[str | None, typer.Option(
    "--generated-at", metavar="TIME", help="When the publisher generated the file, e.g. "
                                           "2026-02-27T00:00:00Z [default: read from the file]")]


@import_app.command("un-xml")
def import_un_xml(ctx: typer.Context, file: FileArg, issuer: IssuerOpt,
                  allow_shrink: ShrinkOpt = False,
                  valid_for: ValidForOpt = DEFAULT_VALID_FOR.days,
                  generated_at: GeneratedOpt = None, json: JsonFlag = False) -> None:
    """Import the UN Security Council Consolidated List (XML)."""
    _import(ctx, un_xml.read, file, issuer, allow_shrink, valid_for, generated_at, json)


@import_app.command("us-csl")
def import_us_csl(ctx: typer.Context, file: FileArg, issuer: IssuerOpt,
                  allow_shrink: ShrinkOpt = False,
                  valid_for: ValidForOpt = DEFAULT_VALID_FOR.days,
                  generated_at: GeneratedOpt = None, json: JsonFlag = False) -> None:
    """Import the US Consolidated Screening List (CSV from trade.gov)."""
    _import(ctx, us_csl.read, file, issuer, allow_shrink, valid_for, generated_at, json)


def _import(ctx: typer.Context, read: Callable[..., Snapshot], file: Path, issuer: str,
            allow_shrink: bool, valid_for: int, generated_at: str | None, json: bool) -> None:
    installation = Installation.open(options(ctx).home)
    when: datetime | None = parse_timestamp(generated_at) if generated_at else None
    snapshot = read(file, generated_at=when)
    with progress_bars(not json):
        report = import_snapshot(installation, snapshot, issuer=issuer,
                                 allow_shrink=allow_shrink, valid_for=timedelta(days=valid_for))
    data = report.to_json()
    if json:
        emit_json(data)
        return
    if data["invalid"]:
        err.print(f"{len(data['invalid'])} records cannot become entries and were left out:")
        table(None, ("record", "problem"), sorted(data["invalid"].items()))
    published = data["published"]
    out.print(f"{data['source']}: {data['records']} records in {data['file']} (generated "
              f"{data['generated_at']}); published {published['impose']} impose, "
              f"{published['amend']} amend ({data['renewed']} renewals), {published['revoke']} "
              f"revoke; {data['unchanged']} unchanged, {len(data['ended'])} already ended by "
              f"the list, {len(data['invalid'])} invalid")
    if sum(published.values()):
        out.print("`interdict sync` ingests and delivers them")
