"""``interdict erase``: erasure after retention (docs/accountability.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from interdict.accountability import erasure
from interdict.auditlog import log, sign_checkpoint
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.output import emit_json, err, out, table
from interdict.installation import Installation
from interdict.storage import transaction


@app.command("erase")
def erase(ctx: typer.Context,
          dry_run: Annotated[bool, typer.Option(
              "--dry-run", help="Say what would be erased; change nothing.")] = False,
          json: JsonFlag = False) -> None:
    """Erase the personal data of entries lifted longer ago than the retention period (the
    policy's retention_days, 3 years by default): documents become tombstones that keep
    their digests. Counts only are printed. Entries an agency may still hold are kept and
    reported as held; agencies that did not confirm deletion are listed."""
    installation = Installation.open(options(ctx).home)
    report = erasure.erase(installation, dry_run=dry_run, actor=log.operator())
    if report.erased_anything:
        with transaction(installation.db) as session:
            sign_checkpoint(session, installation.log_signer, installation.home.log_origin)
    data = report.to_json()
    if json:
        emit_json(data)
    else:
        _print(data)


def _print(data: dict[str, Any]) -> None:
    verb = "would erase" if data["dry_run"] else "erased"
    docs = data["documents"]
    out.print(f"{verb} {data['entries']} entries lifted before {data['lifted_before']} "
              f"(retention {data['retention_days']} days): {docs['entry']} revisions, "
              f"{docs['directive']} directives, {docs['receipt']} receipts, "
              f"{docs['quarantine']} quarantined ({data['quarantine_by_age']} by age alone), "
              f"{docs['import']} import tokens; {data['published']} published copies")
    if data["held"]:
        table("held: an agency may still hold the restriction", ("reason", "entries"),
              sorted(data["held"].items()))
    if data["unconfirmed"]:
        table("agencies that did not confirm deletion in their lift receipt",
              ("agency", "entries"), sorted(data["unconfirmed"].items()))
        err.print("interdict erased its own copies; ask these agencies to confirm theirs")
