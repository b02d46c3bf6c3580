"""The entry gate: what an imposition or amendment must carry besides a legal basis. Pure.

An ``impose`` or ``amend`` (schema ``interdict/entry/v2``) names the **decision** that imposes
it, an **individual assessment** (why the measure is necessary and proportionate for this
subject) and either a **notice** record (when and how the subject was told, covering the
reasons, the legal basis, the agencies, the expiry and how to object) or the legal
**exemption** from notice. The notice comes before the measure takes effect unless an
exemption applies (SIS; China's 2020 guidance on credit punishment: notice before listing).
A ``revoke`` needs none of this: lifts always go through.

An **extension** is an amend whose ``expires_at`` is later than the previous revision's. It
must carry a new assessment, and the measure policy may cap how many an entry gets (counted
since its latest ``impose``).

Each check returns ``(reason code, detail)`` or None; admission turns it into a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

V2 = "interdict/entry/v2"
MIN_ASSESSMENT = 40  # characters, not counting surrounding white space
NOTICE_ITEMS = ("reasons", "legal_basis", "agencies", "expiry", "redress")

Problem = tuple[str, str]
# Clocks of issuers and interdict disagree a little; a notice minutes "ahead" is not refused.
CLOCK_SKEW = timedelta(minutes=5)


def needs_gate(document: Mapping[str, Any]) -> bool:
    return document.get("op") in ("impose", "amend")


def v1_problem(document: Mapping[str, Any]) -> Problem | None:
    """A v1 impose or amend cannot carry the gate's members."""
    if not needs_gate(document):
        return None
    return ("gate.entry_v1", f"an {document['op']} in interdict/entry/v1 cannot carry the "
                             "decision, assessment and notice an imposition needs: publish it as "
                             f"{V2} (docs/publishing.md)")


def missing(document: Mapping[str, Any]) -> Problem | None:
    """The first gate member an impose or amend lacks. Runs before the schema check, so that
    the refusal names what to add rather than a schema keyword."""
    if not needs_gate(document):
        return None
    if "decision" not in document:
        return ("gate.decision", "/decision is missing: name the decision that imposes the "
                                 "measure (reference, authority, date)")
    assessment = document.get("assessment")
    if not isinstance(assessment, str) or len(assessment.strip()) < MIN_ASSESSMENT:
        return ("gate.assessment", "/assessment is missing or shorter than "
                                   f"{MIN_ASSESSMENT} characters: state why the measure is "
                                   "necessary and proportionate for this subject")
    if "notice" not in document and "notice_exemption" not in document:
        return ("gate.notice", "neither /notice nor /notice_exemption: record when and how the "
                               "subject was told, or the legal exemption from notice")
    return None


def notice_problem(document: Mapping[str, Any], effective_from: datetime,
                   published_at: datetime) -> Problem | None:
    """A notice must cover all five items, have been given when the entry was published (a
    record of a notice not sent yet is no notice), and come no later than the measure takes
    effect unless an exemption applies. Runs on a schema-valid document."""
    notice = document.get("notice")
    if not needs_gate(document) or notice is None:
        return None
    left_out = [item for item in NOTICE_ITEMS if item not in notice["covered"]]
    if left_out:
        return ("gate.notice_incomplete", f"/notice/covered lacks {', '.join(left_out)}: a "
                                          "notice tells the subject the reasons, the legal "
                                          "basis, the agencies, the expiry and how to object")
    if when(notice["at"]) > published_at + CLOCK_SKEW:
        return ("gate.notice_future", f"/notice/at {notice['at']} is after the entry was "
                                      f"published ({published_at.isoformat()}): record "
                                      "the notice once it has been given (or, where the law "
                                      "allows deferring it, /notice_exemption with notice_due)")
    if "notice_exemption" not in document and when(notice["at"]) > effective_from:
        return ("gate.notice_late", f"/notice/at {notice['at']} is after /effective_from "
                                    f"{document['effective_from']}: the subject must be told "
                                    "before the measure takes effect, unless "
                                    "/notice_exemption names the legal ground for deferring it")
    return None


def is_extension(previous_expiry: datetime | None, expires_at: datetime | None) -> bool:
    return (previous_expiry is not None and expires_at is not None
            and expires_at > previous_expiry)


def same_statement(a: str | None, b: str | None) -> bool:
    """Equal once white space and case are ignored: a re-spaced assessment is not new."""
    return a is not None and b is not None and " ".join(a.split()).casefold() == " ".join(
        b.split()).casefold()


def count_extensions(history: Iterable[tuple[str, datetime | None]]) -> int:
    """Extensions since the latest impose, from ``(op, expires_at)`` per accepted revision in
    revision order."""
    count, previous = 0, None
    for op, expires_at in history:
        if op == "impose":
            count = 0
        elif op == "amend" and is_extension(previous, expires_at):
            count += 1
        previous = expires_at
    return count


def review_clock_start(history: Iterable[tuple[str, str | None, datetime]]) -> datetime | None:
    """When the review clock last started, from ``(op, assessment, accepted_at)`` per
    accepted revision in revision order: an impose starts it, and so does an amend whose
    assessment differs from its predecessor's (a new assessment); an amend that keeps the
    assessment (a corrected address, say) does not, or trivial amends would postpone review
    forever."""
    start, previous = None, None
    for op, assessment, accepted_at in history:
        if op == "impose" or (op == "amend" and assessment != previous):
            start = accepted_at
        previous = assessment
    return start


def assessment_of(document: Mapping[str, Any]) -> str | None:
    found = document.get("assessment")
    return found if isinstance(found, str) else None


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
