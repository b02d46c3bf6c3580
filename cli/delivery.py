"""Delivery commands: ``dead-letter list|retry``, ``reconcile``, ``serve``, and for agencies
``agency receiver`` and ``agency engine-keys``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from interdict.auditlog import log
from interdict.cli.agencies import agency_app
from interdict.cli.app import JsonFlag, Options, app, options
from interdict.cli.output import emit_json, err, out, status, table
from interdict.directives import deadletter
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.keys import truststore
from interdict.keys.jwk import public_jwk, public_key_to_pem
from interdict.storage import transaction

dead_letter_app = typer.Typer(help="Directives delivery gave up on, and retrying them.",
                              no_args_is_help=True)
app.add_typer(dead_letter_app, name="dead-letter")

AgencyFilter = Annotated[str | None, typer.Option("--agency", metavar="ID",
                                                  help="Only this agency's directives")]


@dead_letter_app.command("list")
def dead_letter_list(ctx: typer.Context, agency: AgencyFilter = None,
                     json: JsonFlag = False) -> None:
    """Dead-lettered directives and lifts an agency rejected (status ``dead`` or
    ``rejected``), each with its attempts and last error."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        rows = [{"directive_id": d.directive_id, "agency": d.agency, "action": d.action,
                 "status": d.status, "issuer": d.issuer, "entry_id": d.entry_id,
                 "revision": d.revision, "attempts": d.attempts, "last_error": d.last_error}
                for d in deadletter.dead_letters(session, agency)]
    if json:
        emit_json(rows)
    elif rows:
        table(None, ("directive", "agency", "action", "status", "entry", "attempts",
                     "last error"),
              [(r["directive_id"], r["agency"], r["action"], r["status"],
                f"{r['entry_id']} rev {r['revision']}", r["attempts"], r["last_error"])
               for r in rows])
    else:
        out.print("no dead letters")


@dead_letter_app.command("retry")
def dead_letter_retry(ctx: typer.Context, agency: AgencyFilter = None,
                      json: JsonFlag = False) -> None:
    """Put dead letters and rejected lifts back in the outbox with a fresh attempt budget
    (the next sync delivers them). One superseded by a later directive for its entry stays
    as it is. A rejected impose or amend is never retried: its issuer must fix the entry."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        result = deadletter.retry_dead(session, actor=log.operator(), agency=agency)
    if json:
        emit_json(result.to_json())
        return
    out.print(f"{len(result.requeued)} directives requeued; `interdict sync` delivers them")
    for directive_id in result.superseded:
        err.print(f"kept: {directive_id} (a later directive for its entry supersedes it)")


@app.command("reconcile")
def reconcile_command(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Ask every agency what it holds, requeue and deliver the difference, report drift."""
    report = _run_reconcile(options(ctx), show_status=not json)
    if json:
        emit_json(report)
        return
    table(None, ("agency", "expected", "held", "drift", "requeued", "lifts", "note"),
          [(a, d["expected"], d["held"], d["drift"], len(d["requeued"]),
            len(d["lifts_issued"]), d["error"] or _kinds(d))
           for a, d in report["agencies"].items()])
    out.print(f"drift {report['drift']}; checkpoint size {report['checkpoint']['size']}")


def _kinds(drift: dict[str, Any]) -> str:
    from interdict.directives.reconcile import KINDS

    return ", ".join(f"{len(drift[k])} {k}" for k in KINDS if drift[k])


def _run_reconcile(opts: Options, *, show_status: bool) -> dict[str, Any]:
    if opts.verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
    from interdict import flows
    from interdict.flows.reconcile import reconcile

    Installation.open(opts.home)
    with status("reconciling…", show_status), flows.flow_settings():
        return reconcile(str(opts.home.root)).to_json()


@app.command()
def serve(
    ctx: typer.Context,
    sync_every: Annotated[float, typer.Option(metavar="SECONDS",
                                              help="How often sync runs")] = 300,
    reconcile_every: Annotated[float, typer.Option(metavar="SECONDS",
                                                   help="How often reconcile runs")] = 3600,
    review_every: Annotated[float, typer.Option(
        metavar="SECONDS", help="How often the review warning runs (review.due)")] = 86400,
    name: Annotated[str, typer.Option(metavar="NAME", help="Deployment name (sync/NAME, "
                                                           "reconcile/NAME, review/NAME, "
                                                           "erase/NAME)")]
    = "interdict",
    erase_every: Annotated[float, typer.Option(
        metavar="SECONDS", help="How often erasure after retention runs")] = 86400,
) -> None:
    """Run sync, reconcile, the review warning (daily) and erase (daily) on a schedule
    through Prefect until stopped (Ctrl-C).

    Never two syncs at once: each deployment has a concurrency limit of 1. Point
    PREFECT_API_URL at a Prefect server to see and trigger the runs there."""
    opts = options(ctx)
    Installation.open(opts.home)
    from interdict.flows import deploy

    err.print(f"serving sync every {sync_every:g} s, reconcile every {reconcile_every:g} s"
              f", review every {review_every:g} s and erase every {erase_every:g} s for "
              f"{opts.home.root}")
    deploy.serve(str(opts.home.root), name=name, sync_every=sync_every,
                 reconcile_every=reconcile_every, review_every=review_every,
                 erase_every=erase_every)


# -- for agencies --------------------------------------------------------------------------

@agency_app.command("receiver")
def agency_receiver(
    agency: Annotated[str, typer.Option("--agency", metavar="ID",
                                        help="The agency id directives must be addressed to")],
    data_dir: Annotated[Path, typer.Option(
        "--data-dir", metavar="DIR", help="Where the store and the receipt key live")],
    engine_key: Annotated[Path, typer.Option(
        "--engine-key", metavar="FILE",
        help="interdict's engine public key(s): PEM, or JWKS (`interdict agency engine-keys`)")],
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port to listen on")] = 8470,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on")]
    = "127.0.0.1",
    log_requests: Annotated[bool, typer.Option("--log-requests",
                                               help="Log each request on stderr")] = False,
) -> None:
    """Run the reference webhook receiver: verify, store once, answer with signed receipts."""
    from interdict.agencies.receiver import RECEIPT_PUBLIC_KEY, Receiver, ReceiverServer

    receiver = Receiver.open(agency=agency, data_dir=data_dir, engine_key_file=engine_key)
    try:
        server = ReceiverServer(receiver, host, port, verbose=log_requests)
    except OSError as exc:
        receiver.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}",
                         code="receiver.listen") from None
    err.print(f"receiving directives for {agency} at {server.url}/ (holdings at "
              f"{server.url}/holdings); receipts signed with key {receiver.signer.kid}, "
              f"public key in {data_dir / RECEIPT_PUBLIC_KEY} for your manifest's public_keys")
    if host not in ("127.0.0.1", "::1", "localhost"):
        err.print("note: this is plain HTTP; put a TLS terminator in front of it, interdict "
                  "sends directives only over https to another machine")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        err.print("stopped")
    finally:
        server.server_close()
        receiver.close()


@agency_app.command("engine-keys")
def engine_keys(ctx: typer.Context,
                pem: Annotated[bool, typer.Option("--pem", help="PEM instead of JWKS")] = False
                ) -> None:
    """interdict's public keys that sign directives and webhooks (JWKS), for agencies."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        keys = [k for k in truststore.keys_of(session, "engine", "interdict")
                if k.status != "revoked"]
    if pem:
        sys.stdout.write("".join(public_key_to_pem(k.public_key) for k in keys))
    else:
        emit_json({"keys": [{**public_jwk(k.public_key), "kid": k.kid, "use": "sig",
                             "alg": "Ed25519"} for k in keys]})
