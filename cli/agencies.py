"""Agencies' commands: the registry, and the queries a person can try at each built-in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from interdict.agencies.simulated import Decision
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.output import emit_json, out, table
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.storage import transaction
from interdict.storage.models import Agency

agency_app = typer.Typer(help="Agencies and their systems.", no_args_is_help=True)
app.add_typer(agency_app, name="agency")

Subject = Annotated[str | None, typer.Option("--subject", metavar="SCHEME:VALUE",
                                             help="An identifier, e.g. passport:E12345678")]
Name = Annotated[str | None, typer.Option("--name", help="A name, as written on the document")]


@agency_app.command("list")
def agency_list(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Registered agencies."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        rows = [{"id": a.id, "name": a.name, "adapter": a.adapter, "enabled": a.enabled,
                 "status": a.status, "measures": a.manifest["measures"],
                 "subject_fields": a.manifest["subject_fields"]}
                for a in session.execute(sa.select(Agency).order_by(Agency.id)).scalars()]
    if json:
        emit_json(rows)
    else:
        table(None, ("id", "adapter", "status", "measures", "receives"),
              [(r["id"], r["adapter"], r["status"], ",".join(r["measures"]),
                ",".join(r["subject_fields"])) for r in rows])


def _ask(ctx: typer.Context, agency: str, question: str,
         query: Callable[[Any], Decision], json: bool) -> None:
    adapter = Installation.open(options(ctx).home).adapter(agency)
    decision = query(adapter)
    if json:
        emit_json(decision.to_json())
    else:
        _explain(question, decision)
    if not decision.allowed:
        raise typer.Exit(3)  # a script can branch on "refused" without parsing text


def _explain(question: str, decision: Decision) -> None:
    if decision.allowed:
        out.print(f"{question}: allowed")
        return
    out.print(f"{question}: REFUSED")
    for r in decision.restrictions:
        basis, redress = r["legal_basis"], r["redress"]
        out.print(f"  directive {r['directive_id']} for {r['entry_ref']['entry_id']} "
                  f"rev {r['entry_ref']['revision']}")
        out.print(f"  measures  {', '.join(m['type'] for m in r['measures'])}")
        out.print(f"  reason    {r['reason']}")
        out.print(f"  legal     {basis['instrument']} {basis.get('provision', '')} "
                  f"{basis.get('decision', '')}".rstrip())
        out.print(f"  in force  {r['effective_from']} until {r['expires_at']}")
        how = redress.get("contact") or redress.get("url")
        deadline = f" within {redress['deadline_days']} days" if "deadline_days" in redress else ""
        out.print(f"  appeal    {redress['authority']}, {how}{deadline}")


def _who(subject: str | None, name: str | None) -> dict[str, str | None]:
    if not subject and not name:
        raise UsageError("say who: --subject SCHEME:VALUE or --name NAME")
    if subject and ":" not in subject:
        raise UsageError(f"--subject {subject!r} must be SCHEME:VALUE, e.g. passport:E12345678")
    return {"identifier": subject, "name": name}


travel_app = typer.Typer(help="The travel booking system.", no_args_is_help=True)
loans_app = typer.Typer(help="The credit register.", no_args_is_help=True)
permits_app = typer.Typer(help="The permit registry.", no_args_is_help=True)
agency_app.add_typer(travel_app, name="travel")
agency_app.add_typer(loans_app, name="loans")
agency_app.add_typer(permits_app, name="permits")


@travel_app.command("check-booking")
def check_booking(ctx: typer.Context, subject: Subject = None, name: Name = None,
                  mode: Annotated[str, typer.Option(help="air, rail or sea")] = "air",
                  json: JsonFlag = False) -> None:
    """May this traveller book? Exit 0 allowed, 3 refused."""
    who = _who(subject, name)
    _ask(ctx, "travel", f"{mode} booking", lambda a: a.check_booking(mode=mode, **who), json)


@loans_app.command("check-loan")
def check_loan(ctx: typer.Context, subject: Subject = None, name: Name = None,
               json: JsonFlag = False) -> None:
    """May a lender grant this borrower a new loan? Exit 0 allowed, 3 refused."""
    who = _who(subject, name)
    _ask(ctx, "loans", "new loan", lambda a: a.check_loan(**who), json)


@permits_app.command("check-permit")
def check_permit(ctx: typer.Context, subject: Subject = None, name: Name = None,
                 kind: Annotated[str, typer.Option(help="business or professional")] = "business",
                 json: JsonFlag = False) -> None:
    """May this applicant get a new permit? Exit 0 allowed, 3 refused."""
    who = _who(subject, name)
    _ask(ctx, "permits", f"new {kind} permit", lambda a: a.check_permit(kind=kind, **who), json)


@permits_app.command("permits-of")
def permits_of(ctx: typer.Context, subject: Subject = None, name: Name = None,
               json: JsonFlag = False) -> None:
    """Permits the registry holds for this holder, and whether they are suspended."""
    who = _who(subject, name)
    adapter: Any = Installation.open(options(ctx).home).adapter("permits")
    rows = adapter.permits_of(**who)
    if json:
        emit_json(rows)
    else:
        table(None, ("permit", "kind", "holder", "status", "suspended by"),
              [(r["permit_id"], r["kind"], r["holder_name"], r["status"], r["suspended_by"])
               for r in rows])
