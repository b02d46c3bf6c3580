"""Issuers' commands: ``issuer add|list`` and ``publish``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from interdict import issuers, schemas
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.output import emit_json, out, table
from interdict.errors import DocumentError, UsageError
from interdict.installation import Installation
from interdict.keys.jws import strict_json
from interdict.storage import transaction
from interdict.storage.models import Issuer, TrustedKey

issuer_app = typer.Typer(help="Register issuing authorities and their keys.",
                         no_args_is_help=True)
app.add_typer(issuer_app, name="issuer")


@issuer_app.command("add")
def issuer_add(
    ctx: typer.Context,
    issuer_id: Annotated[str, typer.Argument(metavar="ID", help="e.g. court-7")],
    measures: Annotated[str, typer.Option(help="Measure types it may impose, comma-separated, "
                                               "e.g. travel.air,credit.loan")],
    name: Annotated[str | None, typer.Option(help="Its full name [default: ID]")] = None,
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", metavar="PEM", help="Its Ed25519 public key (PEM file); without it a "
                                             "key pair is generated and kept in the home")] = None,
) -> None:
    """Register an issuer and the measures it may impose."""
    pem = public_key.read_text() if public_key else None
    installation = Installation.open(options(ctx).home)
    kid = issuers.add(installation, issuer_id, name=name or issuer_id,
                      measures=[m.strip() for m in measures.split(",") if m.strip()],
                      public_key_pem=pem)
    out.print(f"issuer {issuer_id} registered with key {kid}")


@issuer_app.command("list")
def issuer_list(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Registered issuers, their measures and keys."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        rows = []
        for issuer in session.execute(sa.select(Issuer).order_by(Issuer.id)).scalars():
            keys = session.execute(sa.select(TrustedKey).where(
                TrustedKey.owner_kind == "issuer", TrustedKey.owner_id == issuer.id)).scalars()
            rows.append({"id": issuer.id, "name": issuer.name, "measures": issuer.measures,
                         "keys": [{"kid": k.kid, "status": k.status} for k in keys]})
    if json:
        emit_json(rows)
    else:
        table(None, ("id", "name", "measures", "keys"),
              [(r["id"], r["name"], ",".join(r["measures"]), len(r["keys"])) for r in rows])


@app.command()
def publish(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="An entry (JSON) to sign, or with --signed a JWS")],
    issuer: Annotated[str | None, typer.Option(help="Sign with this issuer's local key")] = None,
    signed: Annotated[bool, typer.Option("--signed", help="FILE is a JWS compact "
                                                           "serialization: publish it as it is")]
    = False,
) -> None:
    """Publish an entry to the public database."""
    installation = Installation.open(options(ctx).home)
    if signed:
        token = file.read_text().strip()
    else:
        if issuer is None:
            raise UsageError("publish FILE needs --issuer ID (or --signed for a JWS)")
        token = issuers.sign(installation, issuer, [_entry(file)])[0]
    (seq,) = installation.public.publish([token])
    out.print(f"published as seq {seq}")


def _entry(file: Path) -> dict[str, object]:
    try:
        document = strict_json(file.read_bytes())
    except Exception as exc:
        raise DocumentError(f"{file}: {exc}", code="entry.json") from None
    if not isinstance(document, dict):
        raise DocumentError(f"{file}: an entry is a JSON object", code="entry.json")
    try:
        schemas.check("entry", document)
    except DocumentError as exc:
        raise DocumentError(f"{file}: {exc.message}", code=exc.code) from None
    return document


