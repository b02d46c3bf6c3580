"""The objection register: ``objection add|decide|list`` (accountability/objections.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from interdict.accountability import objections
from interdict.accountability.timing import parse_iso
from interdict.auditlog import log
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.output import emit_json, err, out, table
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.storage import transaction, utcnow

OVERDUE_EXIT = 4  # like `interdict slo`: monitoring branches on it

objection_app = typer.Typer(help="The objection register: objections lodged with issuers "
                            "against entries, their decisions and review deadline.",
                            no_args_is_help=True)
app.add_typer(objection_app, name="objection")

ReviewDays = Annotated[int, typer.Option(
    "--review-days", metavar="DAYS", min=1, help="How many days an objection may stay "
    "undecided before it is overdue.")]


def _instant(text: str | None, now: datetime, option: str) -> datetime:
    """An ISO 8601 instant with its offset (``2026-11-20T09:00:00Z``), or now."""
    if text is None:
        return now
    try:
        when = parse_iso(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 instant with an offset, e.g. "
                         "2026-11-20T09:00:00Z", code="objection.time")
    return when


@objection_app.command("add")
def objection_add(
    ctx: typer.Context,
    entry: Annotated[str, typer.Argument(metavar="ISSUER/ENTRY_ID", help="The entry objected "
                                         "to, e.g. court-7/case-1.")],
    received: Annotated[str | None, typer.Option(
        "--received", metavar="ISO", help="When the issuer received it [default: now].")]
    = None,
    json: JsonFlag = False,
) -> None:
    """Record that the issuer received an objection to an entry: dates only, nothing about
    the person (audit event objection.received)."""
    issuer, entry_id = objections.parse_entry(entry)
    now = utcnow()
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        row = objections.receive(session, issuer, entry_id, _instant(received, now,
                                                                     "--received"),
                                 now, log.operator())
        data = objections.to_json(row, now, objections.Deadline())
    if json:
        emit_json(data)
    else:
        err.print(f"recorded objection {data['id']} to {entry_id}, received "
                  f"{data['received_at']}")


@objection_app.command("decide")
def objection_decide(
    ctx: typer.Context,
    objection_id: Annotated[int, typer.Argument(metavar="ID")],
    outcome: Annotated[str, typer.Option(
        "--outcome", metavar="OUTCOME", help="upheld, partly_upheld, rejected or withdrawn.")],
    at: Annotated[str | None, typer.Option(
        "--at", metavar="ISO", help="When it was decided [default: now].")] = None,
    json: JsonFlag = False,
) -> None:
    """Record the decision on an objection, once (audit event objection.decided)."""
    now = utcnow()
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        row = objections.decide(session, objection_id, outcome, _instant(at, now, "--at"),
                                now, log.operator())
        data = objections.to_json(row, now, objections.Deadline())
    if json:
        emit_json(data)
    else:
        err.print(f"objection {objection_id}: {outcome} after {data['days']} days")


@objection_app.command("list")
def objection_list(
    ctx: typer.Context,
    open_only: Annotated[bool, typer.Option("--open", help="Only undecided objections.")]
    = False,
    review_days: ReviewDays = objections.DEFAULT_REVIEW_DAYS,
    json: JsonFlag = False,
) -> None:
    """Recorded objections, oldest first; exits 4 with --open while any is overdue (undecided
    longer than --review-days)."""
    now = utcnow()
    deadline = objections.Deadline(review_days)
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        data = [objections.to_json(o, now, deadline)
                for o in objections.listed(session, open_only=open_only)]
    if json:
        emit_json(data)
    elif not data:
        out.print("no objection is open" if open_only else "no objection is recorded")
    else:
        table(None, ("id", "entry", "received", "decided", "outcome", "days", "overdue"),
              [(o["id"], o["entry_id"], o["received_at"], o["decided_at"], o["outcome"],
                o["days"], "yes" if o["overdue"] else "") for o in data])
    overdue = sum(o["overdue"] for o in data)
    if overdue:
        err.print(f"{overdue} objection(s) undecided for more than {review_days} days")
        if open_only:
            raise typer.Exit(OVERDUE_EXIT)
