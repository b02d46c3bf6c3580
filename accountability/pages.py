"""Printable HTML pages: the subject report and the public statistics.

Self-contained: inline CSS and inline SVG, no script, no external asset, so a page can be
printed, mailed or archived as one file. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem;
border-bottom:1px solid #d0d7de;padding-bottom:.2rem}h3{font-size:1rem;margin:1rem 0 .3rem}
.muted{color:#57606a}table{border-collapse:collapse;width:100%;margin:.3rem 0 .8rem}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600}.tag{display:inline-block;padding:0 .4rem;
border-radius:.6rem;font-size:.85em;border:1px solid #d0d7de}
.active{background:#fff1e5;border-color:#d18616}.lifted{background:#e6f4ea;border-color:#2da44e}
section.measure{border:1px solid #d0d7de;border-radius:6px;padding:.4rem 1rem;margin:1rem 0;
page-break-inside:avoid}dl{display:grid;grid-template-columns:11rem 1fr;gap:.15rem .8rem;
margin:.4rem 0}dt{color:#57606a}dd{margin:0}svg text{font:12px system-ui,sans-serif}
@media print{body{margin:0;max-width:none}a{color:inherit}}
"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>"
                                    for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _dl(pairs: Sequence[tuple[str, Any]]) -> str:
    return "<dl>" + "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>"
                            for k, v in pairs if v not in (None, "", [])) + "</dl>"


def _basis(basis: Mapping[str, Any]) -> str:
    return ", ".join(str(basis[k]) for k in ("instrument", "provision", "decision", "regime")
                     if basis.get(k))


def _redress(redress: Mapping[str, Any]) -> str:
    parts = [redress.get("authority"), redress.get("contact"), redress.get("url")]
    text = "; ".join(str(p) for p in parts if p)
    if redress.get("deadline_days"):
        text += f" (within {redress['deadline_days']} days)"
    return text


def _decision(decision: Mapping[str, Any] | None) -> str | None:
    if not decision:
        return None
    return f"{decision['reference']}, {decision['authority']}, {decision['date']}"


def _notice(notice: Mapping[str, Any] | None) -> str | None:
    if not notice:
        return None
    channel = str(notice["channel"]).replace("_", " ")
    return f"{notice['at']} by {channel}, of: {', '.join(notice['covered']).replace('_', ' ')}"


def _exemption(exemption: Mapping[str, Any] | None) -> str | None:
    if not exemption:
        return None
    text = f"{exemption['instrument']}: {exemption['ground']}"
    return text + (f" (notice due {exemption['notice_due']})" if exemption.get("notice_due")
                   else "")


def _held(subject: Mapping[str, Any]) -> str:
    names = ", ".join(n["value"] for n in subject.get("names", []))
    ids = ", ".join(f"{i['scheme']} {i['value']}" for i in subject.get("identifiers", []))
    births = ", ".join(b["date"] for b in subject.get("birth_dates", []))
    return _dl([("names", names), ("identifiers", ids), ("birth dates", births),
                ("nationalities", ", ".join(subject.get("nationalities", [])))])


def _flag(flag: Mapping[str, Any] | None) -> str:
    """An agency's flag: it received the directive and will not act on it, and why."""
    return f"{flag['code']}: {flag['detail']}" if flag else ""


def subject_page(report: Mapping[str, Any]) -> str:
    ident = report["identifier"]
    parts = [f"<h1>Measures recorded about {escape(ident['scheme'])} "
             f"{escape(ident['value'])}</h1>",
             f"<p class='muted'>Generated {escape(report['generated_at'])}. "
             f"{report['active']} active, {len(report['measures'])} in total. Every measure "
             "interdict distributed about this identifier is listed, with where and how to "
             "appeal it.</p>"]
    if not report["measures"]:
        parts.append("<p>No measure about this identifier was ever received.</p>")
    for m in report["measures"]:
        state = "active" if m["status"] == "active" else "lifted"
        parts.append(f"<section class='measure'><h2>{escape(', '.join(m['measures']))} "
                     f"<span class='tag {state}'>{escape(m['status'])}</span></h2>")
        parts.append(_dl([("issued by", m["issuer"]), ("reference", m["entry_id"]),
                          ("legal basis", _basis(m["legal_basis"])),
                          ("reason", m["reason"]), ("listed", m["listed_at"]),
                          ("in force from", m["effective_from"]),
                          ("ends", m["expires_at"]), ("lifted", m["lifted_at"]),
                          ("decision", _decision(m.get("decision"))),
                          ("why it is necessary", m.get("assessment")),
                          ("you were told", _notice(m.get("notice"))),
                          ("exemption from notice", _exemption(m.get("notice_exemption"))),
                          ("how to appeal", _redress(m["redress"]))]))
        parts.append("<h3>Data held</h3>" + _held(m["data_held"]))
        rows = [(agency, d["action"], d["revision"], d["status"], ", ".join(d["fields_sent"]),
                 d["receipt"] or "none yet", d["receipt_at"] or "", _flag(d.get("flag")))
                for agency, ds in sorted(m["agencies"].items()) for d in ds]
        parts.append("<h3>Agencies told</h3>" + _table(
            ("agency", "action", "revision", "delivery", "data sent", "receipt",
             "receipt time", "not acted on because"), rows)
            if rows else "<p>No agency was told.</p>")
        if m.get("objections"):
            parts.append("<h3>Your objections</h3>" + _table(
                ("received", "decided", "outcome"),
                [(o["received_at"], o["decided_at"] or "not yet", o["outcome"] or "")
                 for o in m["objections"]]))
        parts.append("</section>")
    return _page("Subject access report", "".join(parts))


def bar_chart(title: str, values: Mapping[str, float], unit: str = "") -> str:
    """A horizontal bar chart as inline SVG, labelled so it reads without colour."""
    if not values:
        return f"<h3>{escape(title)}</h3><p class='muted'>nothing to show</p>"
    # labels are reason codes and ids, at most ~40 characters: size the column to the longest
    width, row_h = 720, 22
    label_w = min(max(120, 7 * max(len(str(k)) for k in values) + 12), 320)
    top = max(values.values()) or 1
    height = row_h * len(values) + 8
    bars = []
    for i, (label, value) in enumerate(values.items()):
        y = 4 + i * row_h
        w = (width - label_w - 70) * value / top
        bars.append(f"<text x='{label_w - 6}' y='{y + 15}' text-anchor='end'>"
                    f"{escape(label)}</text><rect x='{label_w}' y='{y + 3}' width='{w:.1f}' "
                    f"height='{row_h - 6}' fill='#0969da'/><text x='{label_w + w + 6:.1f}' "
                    f"y='{y + 15}'>{escape(_number(value))}{escape(unit)}</text>")
    return (f"<h3>{escape(title)}</h3><svg role='img' aria-label='{escape(title)}' "
            f"width='{width}' height='{height}' viewBox='0 0 {width} {height}'>"
            + "".join(bars) + "</svg>")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def stats_page(stats: Mapping[str, Any]) -> str:
    active = stats["active"]
    months = stats["over_time"]
    latency = {a: v["p95_s"] for a, v in stats["lift_latency"].items() if v["p95_s"] is not None}
    parts = [
        "<h1>interdict: public statistics</h1>",
        f"<p class='muted'>Generated {escape(stats['generated_at'])}. Counts only; no "
        "personal data.</p>",
        f"<h2>Measures in force</h2><p>{active['entries']} entries in force.</p>",
        bar_chart("by measure type", active["by_type"]),
        bar_chart("by issuer", active["by_issuer"]),
        bar_chart("held by agency", active["by_agency"]),
        "<h2>Over time</h2>",
        _table(("month", "imposed", "revoked", "expired"),
               [(m, v["imposed"], v["revoked"], v["expired"]) for m, v in months.items()]),
        bar_chart("imposed per month", {m: v["imposed"] for m, v in months.items()}),
        bar_chart("lifted per month", {m: v["revoked"] + v["expired"]
                                       for m, v in months.items()}),
        "<h2>Refusals at intake</h2>",
        bar_chart("by reason code", stats["refusals"]),
        "<h2>Lifts</h2>",
        bar_chart("p95 lift latency per agency", latency, " s"),
        _table(("agency", "lifts", "done", "open", "p50 s", "p95 s", "max s"),
               [(a, v["lifts"], v["done"], v["open"], v["p50_s"], v["p95_s"], v["max_s"])
                for a, v in stats["lift_latency"].items()]),
        f"<p>Lifts past the {stats['late_lifts']['deadline_s'] / 3600:g} h deadline:</p>",
        bar_chart("late lifts per agency", stats["late_lifts"]["by_agency"]),
        "<h2>Agency flags</h2><p>Directives an agency received and will not act on, with "
        "its reason.</p>",
        bar_chart("by reason code", stats["flags"]["by_code"]),
        bar_chart("by agency", stats["flags"]["by_agency"]),
        *_objections(stats["objections"]),
    ]
    return _page("interdict statistics", "".join(parts))


def _objections(found: Mapping[str, Any]) -> list[str]:
    return [
        "<h2>Objections</h2><p>Objections to entries, as recorded in the objection register "
        f"(review within {found['review_days']} days).</p>",
        bar_chart("received per month", found["received_by_month"]),
        bar_chart("decided by outcome", found["decided_by_outcome"]),
        _table(("median days to decision", "max days", "decided late", "open", "overdue"),
               [(found["median_days"], found["max_days"], found["decided_late"],
                 found["open"], found["overdue"])]),
    ]
