"""The main job: ``init``, ``demo``, ``sync`` and ``status``."""

from __future__ import annotations

import os
from typing import Any

import typer

from interdict import demo as demo_data
from interdict.accountability import flags
from interdict.cli import reports
from interdict.cli.app import JsonFlag, Options, app, options
from interdict.cli.output import emit_json, err, out, progress_bars, status, table
from interdict.home import Home
from interdict.installation import Installation
from interdict.keys import keyfile
from interdict.storage import transaction


def run_sync(opts: Options, *, show_progress: bool) -> dict[str, Any]:
    """Run the sync flow through Prefect and return its report as JSON-ready data."""
    if opts.verbose:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
    from interdict import flows  # imports Prefect: only commands that run flows pay for it

    Installation.open(opts.home)
    with status("syncing (Prefect's first run on a machine takes a while)…", show_progress), \
            progress_bars(show_progress), flows.flow_settings():
        report = flows.sync(str(opts.home.root))
    return report.to_json()


def summary_line(report: dict[str, Any]) -> str:
    agencies = report["directives"]
    delivered = sum(a["delivered"] for a in agencies.values())
    failed = sum(a["failed"] + a["dead_lettered"] + a["rejected"] for a in agencies.values())
    names = "/".join(agencies) or "no agency"
    line = (f"{report['accepted']} accepted, {report['quarantined']} quarantined, "
            f"{delivered} directives delivered to {names}")
    if failed:
        line += f" ({failed} not delivered yet, see `interdict status`)"
    flagged = sum(a.get("flagged", 0) for a in agencies.values())
    if flagged:
        line += f", {flagged} flagged by the agency (see `interdict flags`)"
    return line + f", checkpoint size {report['checkpoint']['size']}"


def _warn_demo_passphrase() -> None:
    if keyfile.using_demo_passphrase():
        err.print(f"note: private keys use the demo passphrase; set {keyfile.PASSPHRASE_ENV} "
                  "for a real installation")


@app.command()
def init(ctx: typer.Context) -> None:
    """Create an empty installation: folders, database, interdict's own keys."""
    home: Home = options(ctx).home
    _warn_demo_passphrase()
    Installation.init(home)
    out.print(f"initialised {home.root}")


@app.command()
def sync(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Ingest new entries, lift expired ones, deliver directives, sign a checkpoint."""
    report = run_sync(options(ctx), show_progress=not json)
    if json:
        emit_json(report)
    else:
        out.print(summary_line(report))


@app.command("status")
def show_status(ctx: typer.Context, json: JsonFlag = False) -> None:
    """What the installation holds: backlog, entries, quarantine, outbox, audit log."""
    data = reports.status(Installation.open(options(ctx).home))
    if json:
        emit_json(data)
        return
    pub = data["public_database"]
    out.print(f"home        {data['home']}")
    out.print(f"public db   head {pub['head']}, ingested to {pub['cursor']}, "
              f"backlog {pub['backlog']}")
    out.print(f"entries     {_pairs(data['entries'])}; quarantined {data['quarantined']}")
    out.print(f"directives  {_pairs(data['directives'])}")
    if data["flags"]:
        out.print(f"flags       {data['flags']} directive(s) an agency will not act on "
                  "(`interdict flags`)")
    log = data["audit_log"]
    out.print(f"audit log   {log['size']} events, last checkpoint at {log['checkpoint']}")
    table(None, ("agency", "adapter", "enabled", "directives"),
          [(k, v["adapter"], "yes" if v["enabled"] else "no", _pairs(v["directives"]))
           for k, v in data["agencies"].items()])


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"


@app.command()
def demo(ctx: typer.Context, json: JsonFlag = False) -> None:
    """Set up sample issuers and agencies, publish sample entries (some bad), sync, show."""
    opts = options(ctx)
    _warn_demo_passphrase()
    installation = demo_data.setup(opts.home)
    published = demo_data.publish_samples(installation)
    report = run_sync(opts, show_progress=not json)
    effects = _effects(installation)
    quarantine = reports.quarantined(installation)
    with transaction(installation.db) as session:
        flagged = flags.flagged(session)
    pages = demo_data.write_reports(installation)
    if json:
        emit_json({"published": published, "sync": report, "quarantine": quarantine,
                   "flagged": flagged, "effects": effects, "reports": pages})
        return
    out.print(f"published {published} sample entries to {installation.home.public_database_url}")
    out.print(summary_line(report))
    if quarantine:
        table("\nRefused, kept in quarantine", ("seq", "reason", "detail"),
              [(q["seq"], q["reason"], q["detail"]) for q in quarantine])
    table("\nWhat the agencies now do", ("subject", "air booking", "new loan", "business permit"),
          [(e["subject"], *(_word(e[k]) for k in ("travel", "loans", "permits")))
           for e in effects])
    if flagged:
        table("\nFlagged: the agency verified the directive but will not act on it",
              ("agency", "entry", "code", "why"),
              [(f["agency"], f["entry_id"], f["code"], f["detail"]) for f in flagged])
    out.print(f"\nSubject access report for {demo_data.REPORTED_SUBJECT}: {pages['subject']}")
    out.print(f"Public statistics page: {pages['stats']}")
    out.print("\nTry: interdict agency travel check-booking --subject passport:E12345678")


def _word(allowed: bool) -> str:
    return "allowed" if allowed else "REFUSED"


def _effects(installation: Installation) -> list[dict[str, Any]]:
    from interdict.agencies.loans import CreditRegister
    from interdict.agencies.permits import PermitRegistry
    from interdict.agencies.travel import TravelBooking

    travel, loans, permits = (installation.adapter(a) for a in ("travel", "loans", "permits"))
    assert isinstance(travel, TravelBooking) and isinstance(loans, CreditRegister)
    assert isinstance(permits, PermitRegistry)
    rows = []
    for label, identifier in demo_data.subjects():
        rows.append({"subject": label, "identifier": identifier,
                     "travel": travel.check_booking(identifier=identifier).allowed,
                     "loans": loans.check_loan(identifier=identifier).allowed,
                     "permits": permits.check_permit(identifier=identifier).allowed})
    return rows
