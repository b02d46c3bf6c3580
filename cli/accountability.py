"""Accountability commands: ``slo``, ``subject report``, ``stats``, ``policy show|diff|apply``,
``review due``, ``flags`` and ``issuer report``. docs/accountability.md explains the duties
behind each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from interdict.accountability import (
    flags,
    lifts,
    objections,
    pages,
    policy,
    reroute,
    review,
    stats,
    subject,
)
from interdict.accountability.timing import parse_duration
from interdict.cli.app import JsonFlag, app, options
from interdict.cli.issuing import issuer_app
from interdict.cli.objections import ReviewDays
from interdict.cli.output import emit_json, err, out, table
from interdict.errors import UsageError
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import Issuer

LATE_EXIT = 4  # `interdict slo` when a lift is past its deadline: monitoring branches on it

HtmlFile = Annotated[Path | None, typer.Option(
    "--html", metavar="FILE", help="Write a self-contained printable HTML page to FILE.")]
Deadline = Annotated[str, typer.Option(
    "--deadline", metavar="DURATION", help="How long a lift may take, from its cause to the "
    "agency's receipt (e.g. 30m, 1h, 1d).")]


@app.command("slo")
def slo(ctx: typer.Context, deadline: Deadline = "1h", json: JsonFlag = False) -> None:
    """Lift latency per agency (p50/p95/max, from the lift's cause to the agency's signed
    receipt) and every lift past the deadline, delivered late or not delivered yet. Each late
    lift is escalated once (audit event lift.late); exits 4 while any lift is late."""
    limit = parse_duration(deadline)
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        result = lifts.report(session, utcnow(), limit)
    if json:
        emit_json(result.to_json())
    else:
        _print_slo(result)
    if result.late:
        raise typer.Exit(LATE_EXIT)


def _print_slo(result: lifts.SloReport) -> None:
    data = result.to_json()
    if not data["agencies"]:
        out.print("no lift was issued yet")
    else:
        table(None, ("agency", "lifts", "done", "open", "p50 s", "p95 s", "max s"),
              [(a, v["lifts"], v["done"], v["open"], v["p50_s"], v["p95_s"], v["max_s"])
               for a, v in data["agencies"].items()])
    if data["late"]:
        table(f"late lifts (deadline {deadline_text(result)})",
              ("agency", "entry", "cause", "trigger", "receipt", "seconds"),
              [(lift["agency"], f"{lift['entry_id']}#{lift['revision']}", lift["cause"],
                lift["trigger"], lift["receipt"] or lift["status"], lift["seconds"])
               for lift in data["late"]])
        err.print(f"{len(data['late'])} lift(s) past the deadline; "
                  f"{len(result.escalated)} escalated now (audit: lift.late)")
    else:
        out.print(f"every lift within the deadline ({deadline_text(result)})")


def deadline_text(result: lifts.SloReport) -> str:
    return f"{result.deadline.total_seconds() / 3600:g} h"


subject_app = typer.Typer(help="Subject access: the measures recorded about one person.",
                          no_args_is_help=True)
app.add_typer(subject_app, name="subject")


@subject_app.command("report")
def subject_report(
    ctx: typer.Context,
    identifier: Annotated[str, typer.Option(
        "--id", metavar="SCHEME:VALUE", help="The person's identifier, e.g. passport:E12345678.")],
    purpose: Annotated[str, typer.Option(
        "--purpose", metavar="TEXT", help="Why it is read (a case number, not a name): it is "
        "written to the audit log.")],
    json: JsonFlag = False,
    html: HtmlFile = None,
) -> None:
    """Every active and past measure on one person across agencies: issuer, legal basis,
    dates, how to appeal, what each agency was sent and its receipt, when it was lifted.
    The read is audited (subject.report_read) with the identifier pseudonymised."""
    if json and html:
        raise UsageError("choose --json or --html, not both", code="usage")
    who = subject.SubjectId.parse(identifier)
    data = subject.report(Installation.open(options(ctx).home), who, purpose)
    if json:
        emit_json(data)
    elif html:
        html.write_text(pages.subject_page(data), encoding="utf-8")
        err.print(f"wrote {html} ({len(data['measures'])} measures)")
    else:
        _print_subject(data)


def _print_subject(data: dict[str, Any]) -> None:
    if not data["measures"]:
        out.print("no measure about this identifier was ever received")
        return
    out.print(f"{data['active']} active, {len(data['measures'])} in total")
    for m in data["measures"]:
        out.print(f"\n{m['entry_id']}  ({m['status']})  {', '.join(m['measures'])}",
                  markup=False)
        basis = ", ".join(str(m["legal_basis"][k]) for k in ("instrument", "provision",
                                                               "decision")
                          if m["legal_basis"].get(k))
        for label, value in (("issuer", m["issuer"]), ("legal basis", basis),
                             ("in force", f"{m['effective_from']} to {m['expires_at']}"),
                             ("lifted", m["lifted_at"]),
                             ("appeal", m["redress"]["authority"])):
            if value:
                out.print(f"  {label:<12}{value}", markup=False)
        table(None, ("agency", "action", "rev", "delivery", "receipt", "receipt at", "flag"),
              [(a, d["action"], d["revision"], d["status"], d["receipt"] or "none yet",
                d["receipt_at"] or "", _flag_text(d.get("flag")))
               for a, ds in sorted(m["agencies"].items()) for d in ds])
        if m.get("objections"):
            table("objections", ("received", "decided", "outcome"),
                  [(o["received_at"], o["decided_at"] or "not yet", o["outcome"] or "")
                   for o in m["objections"]])


def _flag_text(flag: dict[str, Any] | None) -> str:
    if not flag:
        return ""
    return f"{flag['code']}: {flag['detail']}" if flag.get("detail") else str(flag["code"])


@app.command("stats")
def stats_command(ctx: typer.Context, deadline: Deadline = "1h", json: JsonFlag = False,
                  html: HtmlFile = None,
                  review_days: ReviewDays = objections.DEFAULT_REVIEW_DAYS) -> None:
    """Public statistics, no personal data: measures in force by type, issuer and agency;
    impositions and lifts per month; refusals by reason; lift latency and late agencies;
    objections received, decided by outcome, days to decision, open and overdue."""
    if json and html:
        raise UsageError("choose --json or --html, not both", code="usage")
    limit = parse_duration(deadline)
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        data = stats.collect(session, utcnow(), limit, objections.Deadline(review_days))
    if json:
        emit_json(data)
    elif html:
        html.write_text(pages.stats_page(data), encoding="utf-8")
        err.print(f"wrote {html}")
    else:
        _print_stats(data)


def _print_stats(data: dict[str, Any]) -> None:
    active = data["active"]
    out.print(f"{active['entries']} entries in force")
    for title, key in (("by measure type", "by_type"), ("by issuer", "by_issuer"),
                       ("held by agency", "by_agency")):
        table(title, ("", "count"), sorted(active[key].items()))
    table("per month", ("month", "imposed", "revoked", "expired"),
          [(m, v["imposed"], v["revoked"], v["expired"]) for m, v in data["over_time"].items()])
    table("refusals by reason", ("reason", "count"), sorted(data["refusals"].items()))
    table("lift latency", ("agency", "lifts", "done", "p50 s", "p95 s", "max s"),
          [(a, v["lifts"], v["done"], v["p50_s"], v["p95_s"], v["max_s"])
           for a, v in data["lift_latency"].items()])
    table("late lifts", ("agency", "count"), sorted(data["late_lifts"]["by_agency"].items()))
    table("agency flags by reason", ("code", "count"), sorted(data["flags"]["by_code"].items()))
    table("agency flags by agency", ("agency", "count"),
          sorted(data["flags"]["by_agency"].items()))
    found = data["objections"]
    table("objections received per month", ("month", "count"),
          sorted(found["received_by_month"].items()))
    table("objections decided by outcome", ("outcome", "count"),
          list(found["decided_by_outcome"].items()))
    table(f"objection review (within {found['review_days']} days)",
          ("median days", "max days", "decided late", "open", "overdue"),
          [(found["median_days"], found["max_days"], found["decided_late"], found["open"],
            found["overdue"])])


policy_app = typer.Typer(help="The measure policy: who enforces each measure, on what legal "
                         "basis, for how long, seeing which fields.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
PolicyFile = Annotated[Path, typer.Argument(metavar="FILE", help="A policy, JSON or YAML "
                                            "(schemas/policy.v1.json).")]


@policy_app.command("show")
def policy_show(ctx: typer.Context, json: JsonFlag = False) -> None:
    """The policy in force, its digest, and who applied it when (or that it is the default
    derived from the agency manifests)."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        current = policy.active(session)
    if json:
        emit_json(current.to_json())
        return
    doc = current.document
    out.print(f"policy   {doc['version']}  {current.digest}")
    out.print(f"applied  {current.applied_by or 'never: the default from the manifests'}"
              + (f" at {current.to_json()['applied_at']}" if current.applied_at else ""))
    table(None, ("measure", "agencies", "instruments", "max days", "review days"),
          [(m, ", ".join(r["agencies"]) or "(none)", "; ".join(r.get("instruments", ["any"])),
            r["max_duration_days"], r["review_interval_days"])
           for m, r in doc["measures"].items()])


def _print_changes(changes: list[dict[str, Any]]) -> None:
    if not changes:
        out.print("no change from the policy in force")
        return
    table(None, ("measure", "change", "agency", "before", "after"),
          [(c["measure"], c["change"], c.get("agency", ""), c.get("before", ""),
            c.get("after", c.get("agencies", ""))) for c in changes])


@policy_app.command("diff")
def policy_diff(ctx: typer.Context, file: PolicyFile, json: JsonFlag = False) -> None:
    """What FILE would change compared with the policy in force (nothing is applied)."""
    document = policy.read(file)
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        policy.check_agencies(session, document)
        changes = policy.diff(policy.active(session).document, document)
    if json:
        emit_json(changes)
    else:
        _print_changes(changes)


@policy_app.command("apply")
def policy_apply(ctx: typer.Context, file: PolicyFile, json: JsonFlag = False) -> None:
    """Validate FILE, show what changes, and put it in force: who applied it and its digest
    go to the audit log (policy.applied). Entries in force are re-routed under it in the same
    transaction: the impose, amend and lift directives it causes are queued in the outbox
    for the next sync or dispatch (policy.rerouted)."""
    document = policy.read(file)
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        rerouted = reroute.apply(session, installation.engine_signer, document, utcnow())
    applied = rerouted.applied
    if json:
        emit_json(rerouted.to_json())
        return
    _print_changes(applied.changes)
    if applied.seq is None:
        err.print("this policy is already in force: nothing recorded")
        return
    err.print(f"applied {applied.policy.digest} (was {applied.previous})")
    for agency, counts in sorted(rerouted.queued.items()):
        detail = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
        out.print(f"queued for {agency}: {sum(counts.values())} ({detail})")
    err.print(f"re-routed {rerouted.entries} entries in force: {rerouted.total} directives "
              "queued (delivered by the next sync or dispatch)")


review_app = typer.Typer(help="Reviews due before entries expire.", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("due")
def review_due(
    ctx: typer.Context,
    within: Annotated[str, typer.Option("--within", metavar="DURATION",
                                        help="How far ahead to look (e.g. 30d, 120d).")]
    = "120d",
    issuer: Annotated[str | None, typer.Option(
        "--issuer", metavar="ID", help="Only this issuer's entries: its own list")] = None,
    json: JsonFlag = False,
) -> None:
    """Entries in force whose expiry or review date (latest revision + the policy's review
    interval) falls within the window, per issuer, with their extensions so far. Each is
    warned once per revision (audit event review.due). Extend one by publishing an amend
    with a new assessment."""
    window = parse_duration(within)
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        if issuer is not None and session.get(Issuer, issuer) is None:
            raise UsageError(f"no issuer {issuer!r} is registered", code="issuer.unknown")
        data = review.report(session, utcnow(), window, issuer)
    if json:
        emit_json(data)
        return
    if not data["issuers"]:
        out.print(f"nothing due within {data['within_days']} days")
    for issuer, items in data["issuers"].items():
        table(f"{issuer}: due within {data['within_days']} days",
              ("entry", "rev", "due", "kind", "days left", "extensions", "warned now"),
              [(d["entry_id"], d["revision"], d["due_at"], d["kind"], d["days_left"],
                _extensions(d), "yes" if d["warned_now"] else "") for d in items])


def _extensions(item: dict[str, Any]) -> str:
    cap = item["max_extensions"]
    return f"{item['extensions']}" if cap is None else f"{item['extensions']} of {cap}"


@app.command("flags")
def flags_command(
    ctx: typer.Context,
    issuer: Annotated[str | None, typer.Option("--issuer", metavar="ID",
                                               help="Only this issuer's entries.")] = None,
    history: Annotated[bool, typer.Option(
        "--all", help="Every flag ever recorded, also those answered by a later directive "
                      "or on entries no longer in force.")] = False,
    json: JsonFlag = False,
) -> None:
    """Directives an agency received and verified but will not act on (receipt status
    flagged), with its reason code and detail: the flags in force (the agency's latest
    directive about an entry in force) unless --all. A flagged directive is answered, so it
    is not retried, and it is never counted as delivered."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        found = flags.flagged(session, issuer, in_force=not history)
    if json:
        emit_json(found)
        return
    if not found:
        out.print("no directive is flagged")
        return
    table(None, ("issuer", "entry", "rev", "agency", "action", "code", "detail", "at"),
          [(f["issuer"], f["entry_id"], f["revision"], f["agency"], f["action"], f["code"],
            f["detail"], f["at"]) for f in found])


@issuer_app.command("report")
def issuer_report(
    ctx: typer.Context,
    issuer: Annotated[str, typer.Argument(metavar="ISSUER")],
    json: JsonFlag = False,
) -> None:
    """Per entry of ISSUER and per agency, where its latest directive stands: delivered,
    flagged by the agency (with the reason), rejected, pending or dead-lettered."""
    installation = Installation.open(options(ctx).home)
    with transaction(installation.db) as session:
        data = flags.issuer_report(session, issuer)
    if json:
        emit_json(data)
        return
    if not data["entries"]:
        out.print(f"{issuer} has no entry")
        return
    out.print(f"{issuer}: {len(data['entries'])} entries; directives "
              + ", ".join(f"{n} {k}" for k, n in data["directives"].items()))
    table(None, ("entry", "rev", "entry status", "agency", "action", "delivery", "flag"),
          [(e["entry_id"], e["revision"], e["status"], agency, d["action"], d["status"],
            _flag_text(d["flag"])) for e in data["entries"]
           for agency, d in e["agencies"].items()])
    if data["flags"]:
        err.print(f"{data['flags']} directive(s) flagged: the agency will not act on them; "
                  "see the reason, then amend the entry or settle it with the agency")
