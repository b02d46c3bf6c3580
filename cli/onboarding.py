"""Administrators' agency commands: ``agency new|test|onboard|show|disable|enable|offboard``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interdict.agencies import conformance, lifecycle, onboarding, scaffold
from interdict.cli.agencies import agency_app
from interdict.cli.app import JsonFlag, options
from interdict.cli.output import emit_json, err, out
from interdict.errors import UsageError
from interdict.installation import Installation

AgencyId = Annotated[str, typer.Argument(metavar="ID", help="The agency's id, e.g. travel")]
Manifest = Annotated[Path, typer.Argument(metavar="MANIFEST", help="The agency manifest (JSON)")]


@agency_app.command("new")
def agency_new(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The agency and adapter id, "
                                                             "e.g. harbour-permits")],
    folder: Annotated[Path, typer.Option("--dir", metavar="DIR",
                                         help="Where to create NAME/ [default: .]")] = Path("."),
    measures: Annotated[str, typer.Option(help="Measure types it enforces, comma-separated")]
    = ",".join(scaffold.DEFAULT_MEASURES),
) -> None:
    """Create an installable adapter package to start from (tests use the conformance kit)."""
    wanted = [m.strip() for m in measures.split(",") if m.strip()]
    target = scaffold.create(name, folder, wanted)
    out.print(f"created {target}", markup=False)
    err.print(f"next: pip install -e '{target}[test]' && (cd {target} && pytest), then "
              f"interdict agency test {target / 'manifest.json'}", markup=False)


@agency_app.command("test")
def agency_test(manifest: Manifest, json: JsonFlag = False) -> None:
    """Run the conformance kit against the manifest's adapter, in a sandbox. Exit 1 on any
    failed check."""
    report = conformance.run(conformance.read_manifest(manifest))
    _show_report(report, json)
    if not report.ok:
        raise UsageError(report.summary(), code="conformance.failed")


@agency_app.command("onboard")
def agency_onboard(
    ctx: typer.Context, manifest: Manifest,
    backfill: Annotated[bool, typer.Option(
        "--backfill", help="Also send it a directive for every active entry that concerns "
                           "it")] = False,
    shadow: Annotated[bool, typer.Option(
        "--shadow", help="Compute and log its directives, send none, until `agency enable`")]
    = False,
    json: JsonFlag = False,
) -> None:
    """Check the manifest, run the conformance kit, register the agency and its keys."""
    installation = Installation.open(options(ctx).home)
    document = conformance.read_manifest(manifest)
    try:
        done = onboarding.onboard(installation, document, backfill=backfill, shadow=shadow)
    except onboarding.ConformanceFailed as exc:
        _show_report(exc.report, json)
        raise
    if json:
        emit_json(done.to_json())
        return
    _show_report(done.conformance, False)
    out.print(f"onboarded {done.agency} ({done.status})")
    if done.released is not None:
        queued = done.released.issued + done.released.released
        verb = "computed in shadow" if done.status == lifecycle.SHADOW else \
            "queued for the next `interdict sync`"
        out.print(f"backfill: {_many(queued, 'directive')} {verb}")


@agency_app.command("show")
def agency_show(ctx: typer.Context, agency: AgencyId, json: JsonFlag = False) -> None:
    """One agency: status, what it receives, its keys, its directives by status."""
    data = lifecycle.describe(Installation.open(options(ctx).home), agency)
    if json:
        emit_json(data)
        return
    for key in ("id", "name", "adapter", "status", "contact", "registered_at"):
        out.print(f"{key:<14}{data[key]}")
    out.print(f"{'measures':<14}{', '.join(data['measures'])}")
    out.print(f"{'receives':<14}{', '.join(data['subject_fields'])}")
    out.print(f"{'keys':<14}" + (", ".join(f"{k['kid']} ({k['status']})" for k in data["keys"])
                                 or "none"))
    out.print(f"{'directives':<14}" + (", ".join(f"{n} {s}" for s, n in
                                                  sorted(data["directives"].items())) or "none"))
    if data["pending"].get("lift") and data["status"] != lifecycle.LIVE:
        err.print(f"warning: {_many(data['pending']['lift'], 'lift')} waiting until the "
                  "agency is enabled or offboarded with --pending deliver")


@agency_app.command("disable")
def agency_disable(ctx: typer.Context, agency: AgencyId) -> None:
    """Stop delivering to it: impositions are withheld, lifts wait in its outbox."""
    previous = lifecycle.disable(Installation.open(options(ctx).home), agency)
    out.print(f"{agency} was already disabled" if previous == lifecycle.DISABLED
              else f"disabled {agency} (was {previous}); lifts for it wait until it is "
                   "enabled again")


@agency_app.command("enable")
def agency_enable(
    ctx: typer.Context, agency: AgencyId,
    backfill: Annotated[bool, typer.Option(
        "--backfill", help="Also send it a directive for every active entry that concerns "
                           "it")] = False,
    json: JsonFlag = False,
) -> None:
    """Make it live (from shadow or disabled): what it should hold is released to it."""
    previous, released = lifecycle.enable(Installation.open(options(ctx).home), agency,
                                          backfill=backfill)
    if json:
        emit_json({"agency": agency, "previous": previous, **released.to_json()})
        return
    out.print(f"enabled {agency} (was {previous}): {released.released} stored and "
              f"{released.issued} new directives queued for the next `interdict sync`, "
              f"{released.superseded} withheld ones superseded")


@agency_app.command("offboard")
def agency_offboard(
    ctx: typer.Context, agency: AgencyId,
    pending: Annotated[str | None, typer.Option(
        "--pending", metavar="deliver|cancel",
        help="What to do with directives still waiting for it: deliver them now, or cancel "
             "and record them")] = None,
    json: JsonFlag = False,
) -> None:
    """Take it out for good: record what it still holds, retire its keys."""
    done = lifecycle.offboard(Installation.open(options(ctx).home), agency,
                              pending_action=pending)
    if json:
        emit_json(done.to_json())
        return
    held = "unknown (" + str(done.reported_error) + ")" if done.reported is None \
        else str(len(done.reported))
    out.print(f"offboarded {agency} (was {done.previous}): {done.delivered} delivered, "
              f"{len(done.cancelled)} cancelled; it reports holding {held}, interdict "
              f"expected {len(done.expected)} (each recorded in the audit log)")


def _many(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _show_report(report: conformance.Report, json: bool) -> None:
    if json:
        emit_json(report.to_json())
        return
    out.print(f"conformance of agency {report.agency} (adapter {report.adapter})")
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        out.print(f"  {'PASS' if check.passed else 'FAIL'}  {check.name:<{width}}  "
                  f"{check.detail}", markup=False)
    out.print(report.summary())
