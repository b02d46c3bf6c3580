"""Issuers' commands: ``issuer add|list|show``, ``issuer key add|retire|revoke``, ``publish``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from interdict import issuers, schemas
from interdict.auditlog import log
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.output import emit_json, out, table
from interdict.entries import gate
from interdict.errors import DocumentError, UsageError
from interdict.installation import Installation
from interdict.keys import truststore
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


@issuer_app.command("show")
def issuer_show(ctx: typer.Context,
                issuer_id: Annotated[str, typer.Argument(metavar="ID")],
                json: JsonFlag = False) -> None:
    """One issuer: its measures and every key, with status and validity window."""
    installation = Installation.open(options(ctx).home)
    data = _issuer_view(installation, issuer_id)
    if json:
        emit_json(data)
        return
    out.print(f"issuer    {data['id']} ({data['name']}), registered {data['created_at']}")
    out.print(f"measures  {', '.join(data['measures'])}")
    local = data["local_kid"]
    out.print(f"signs     {f'with the local key {local}' if local else 'with its own tools'}")
    out.print("keys")
    for k in data["keys"]:  # one line each, so a kid is never cut: people copy it
        out.print(f"  {k['kid']}  {k['status']:<7}  valid from {k['valid_from']}"
                  + (f" until {k['valid_until']}" if k["valid_until"] else ""))


def _issuer_view(installation: Installation, issuer_id: str) -> dict[str, Any]:
    with transaction(installation.db) as session:
        issuer = session.get(Issuer, issuer_id)
        if issuer is None:
            raise UsageError(f"issuer {issuer_id!r} is not registered", code="issuer.unknown")
        keys = session.execute(sa.select(TrustedKey).where(
            TrustedKey.owner_kind == "issuer", TrustedKey.owner_id == issuer_id)
            .order_by(TrustedKey.added_at)).scalars().all()  # type: ignore[arg-type]
        data: dict[str, Any] = {
            "id": issuer.id, "name": issuer.name, "measures": issuer.measures,
            "created_at": _iso(issuer.created_at),
            "keys": [{"kid": k.kid, "status": k.status, "valid_from": _iso(k.valid_from),
                      "valid_until": _iso(k.valid_until), "added_at": _iso(k.added_at)}
                     for k in keys]}
    data["local_kid"] = None
    if installation.issuer_key_path(issuer_id).exists():
        data["local_kid"] = installation.issuer_signer(issuer_id).kid
    return data


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds").replace("+00:00", "Z")


key_app = typer.Typer(help="An issuer's keys over time: add a new one, retire or revoke an old "
                           "one.", no_args_is_help=True)
issuer_app.add_typer(key_app, name="key")
KidArg = Annotated[str, typer.Argument(metavar="KID", help="The key id (RFC 7638 thumbprint), "
                                                           "as `issuer show ID` lists it")]
#: one key id in 64 begins with "-" (base64url): after the ID, every word is an argument, so
#: such a KID is not read as options (``-nRuc...h...`` would have been ``-h``, help)
TAKES_KID = {"allow_interspersed_args": False}


@key_app.command("add")
def key_add(
    ctx: typer.Context,
    issuer_id: Annotated[str, typer.Argument(metavar="ID")],
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", metavar="PEM", help="The new Ed25519 public key (PEM file); without it "
                                             "a new local key pair replaces the local signing "
                                             "key")] = None,
    valid_from: Annotated[str | None, typer.Option(
        metavar="TIME", help="When the key became valid, e.g. 2026-11-01T00:00:00Z: entries "
                             "published before it are refused [default: now]")] = None,
) -> None:
    """Add a key to an issuer; the keys it already has stay valid until retired."""
    installation = Installation.open(options(ctx).home)
    kid = issuers.add_key(installation, issuer_id,
                          public_key_pem=public_key.read_text() if public_key else None,
                          valid_from=parse_timestamp(valid_from) if valid_from else None)
    out.print(f"issuer {issuer_id}: key {kid} added")


@key_app.command("retire", context_settings=TAKES_KID)
def key_retire(ctx: typer.Context, issuer_id: Annotated[str, typer.Argument(metavar="ID")],
               kid: KidArg) -> None:
    """End a key's validity now: it still verifies entries published while it was valid."""
    key = _change_key(ctx, truststore.retire_key, issuer_id, kid)
    out.print(f"issuer {issuer_id}: key {kid} retired; valid until {_iso(key.valid_until)}")


@key_app.command("revoke", context_settings=TAKES_KID)
def key_revoke(ctx: typer.Context, issuer_id: Annotated[str, typer.Argument(metavar="ID")],
               kid: KidArg) -> None:
    """Withdraw all trust from a key (lost or compromised): nothing it signed is accepted
    any more, except what was already ingested."""
    _change_key(ctx, truststore.revoke_key, issuer_id, kid)
    out.print(f"issuer {issuer_id}: key {kid} revoked")


def _change_key(ctx: typer.Context, change: Callable[..., TrustedKey], issuer_id: str,
                kid: str) -> TrustedKey:
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        return change(session, owner_kind="issuer", owner_id=issuer_id, kid=kid,
                      actor=log.operator())


def parse_timestamp(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is not an ISO 8601 timestamp", code="usage.timestamp") \
            from None
    if when.tzinfo is None:
        raise UsageError(f"{text!r} has no time zone; add Z for UTC", code="usage.timestamp")
    return when


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
        version = schemas.declared_version("entry", document)
    except DocumentError as exc:
        raise DocumentError(f"{file}: {exc.message}", code=exc.code) from None
    # the same gate as admission, first, so the error names what to add
    problem = gate.v1_problem(document) if version == 1 else gate.missing(document)
    if problem is not None:
        raise DocumentError(f"{file}: {problem[1]}", code=problem[0])
    try:
        schemas.check("entry", document, version)
    except DocumentError as exc:
        raise DocumentError(f"{file}: {exc.message}", code=exc.code) from None
    return document


