"""Review before expiry: entries due within a window, per issuer, each warned once."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from interdict import issuers
from interdict.accountability import policy, review
from interdict.cli import main
from interdict.flows.review import review as review_flow
from interdict.installation import Installation
from interdict.storage import transaction, utcnow
from interdict.storage.models import Directive, EntryRevision, EntryState
from tests.accountability.conftest import Make, events, publish, sync
from tests.accountability.test_policy import example

NEW_ASSESSMENT = ("Reviewed before expiry: the judgment is still unperformed and the debtor "
                  "still has the means; the restriction remains necessary.")


def iso_in(days: int) -> str:
    return (utcnow() + timedelta(days=days)).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


def test_entries_due_are_listed_per_issuer_and_warned_once(
        installation: Installation, prefect_api: str, make_entry: Make,
        capsys: pytest.CaptureFixture[str]) -> None:
    publish(installation,
            make_entry(entry_id="court-7/soon", expires_at=iso_in(30)),
            make_entry(entry_id="court-7/later", measures=[{"type": "travel.air"}],
                       expires_at=iso_in(400)),
            make_entry(entry_id="court-7/loan", measures=[{"type": "credit.loan"}],
                       expires_at=iso_in(700)))
    sync(installation)
    with transaction(installation.db) as session:  # the example reviews credit.loan yearly
        policy.apply(session, example(), utcnow())
    home = ["--home", str(installation.home.root)]
    assert main([*home, "review", "due", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (listed,) = report["issuers"].values()
    assert [(d["entry_id"], d["kind"]) for d in listed] == [("court-7/soon", "expiry")]
    assert listed[0]["warned_now"] and 28 <= listed[0]["days_left"] <= 30
    with transaction(installation.db) as session:
        wide = review.report(session, utcnow(), timedelta(days=366))
    assert [(d["entry_id"], d["kind"], d["warned_now"]) for d in wide["issuers"]["court-7"]] == [
        ("court-7/soon", "expiry", False), ("court-7/loan", "review", True)]
    warned = events(installation, review.DUE)
    assert [(e["refs"]["entry_id"], e["refs"]["kind"]) for e in warned] == [
        ("court-7/soon", "expiry"), ("court-7/loan", "review")]
    # an extension (an amend with a new assessment) restarts the review clock and is warned
    # about afresh
    publish(installation, make_entry(entry_id="court-7/soon", op="amend", revision=2,
                                     expires_at=iso_in(60), assessment=NEW_ASSESSMENT))
    sync(installation)
    with transaction(installation.db) as session:
        again = review.report(session, utcnow(), timedelta(days=120))
    assert again["warned"] == 1
    assert again["issuers"]["court-7"][0]["revision"] == 2
    assert again["issuers"]["court-7"][0]["extensions"] == 1
    assert main([*home, "review", "due", "--within", "1d"]) == 0
    assert "nothing due within 1 days" in capsys.readouterr().out


def test_the_review_flow_warns_each_issuer_ahead_and_once(
        installation: Installation, prefect_api: str, make_entry: Make,
        capsys: pytest.CaptureFixture[str]) -> None:
    issuers.add(installation, "tax-office", name="Tax office", measures=["credit.loan"])
    publish(installation, make_entry(entry_id="court-7/soon", expires_at=iso_in(30)),
            make_entry(entry_id="court-7/later", expires_at=iso_in(400)))
    installation.public.publish(issuers.sign(installation, "tax-office", [make_entry(
        issuer="tax-office", entry_id="tax-office/t-1", measures=[{"type": "credit.loan"}],
        expires_at=iso_in(90))]))
    sync(installation)
    home = str(installation.home.root)

    first = review_flow(home)
    assert first["warned"] == 2
    assert {i: [d["entry_id"] for d in items] for i, items in first["issuers"].items()} == {
        "court-7": ["court-7/soon"], "tax-office": ["tax-office/t-1"]}
    warned = events(installation, review.DUE)
    assert sorted((e["refs"]["issuer"], e["refs"]["entry_id"], e["refs"]["kind"], e["outcome"])
                  for e in warned) == [("court-7", "court-7/soon", "expiry", "warned"),
                                       ("tax-office", "tax-office/t-1", "expiry", "warned")]
    assert all(set(e["refs"]) <= {"issuer", "entry_id", "revision", "kind", "due_at"}
               for e in warned)  # identifiers and dates only: nothing about the person
    assert review_flow(home)["warned"] == 0  # the next day's run repeats nothing
    assert len(events(installation, review.DUE)) == 2

    # the issuer's own list
    assert main(["--home", home, "review", "due", "--issuer", "tax-office", "--json"]) == 0
    own = json.loads(capsys.readouterr().out)
    assert list(own["issuers"]) == ["tax-office"] and own["warned"] == 0
    assert main(["--home", home, "review", "due", "--issuer", "ghost"]) == 1
    assert "error[issuer.unknown]" in capsys.readouterr().err


def test_an_unextended_entry_is_lifted_at_expiry_and_an_extended_one_is_not(
        installation: Installation, prefect_api: str, make_entry: Make) -> None:
    # wide enough that both are ingested, and the extension accepted, before the expiry
    soon = (utcnow() + timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    publish(installation, make_entry(entry_id="court-7/kept", expires_at=soon),
            make_entry(entry_id="court-7/ends", expires_at=soon))
    publish(installation, make_entry(entry_id="court-7/kept", op="amend", revision=2,
                                     expires_at=iso_in(200), assessment=NEW_ASSESSMENT))
    assert sync(installation)["accepted"] == 3
    time.sleep(max((_when(soon) - utcnow()).total_seconds(), 0) + 0.2)
    sync(installation)
    with transaction(installation.db) as session:
        status = dict(session.execute(sa.select(EntryState.entry_id, EntryState.status)).all())
        lifts = {(d.entry_id, d.agency) for d in session.execute(
            sa.select(Directive).where(Directive.action == "lift")).scalars()}
    assert status == {"court-7/kept": "active", "court-7/ends": "expired"}
    assert lifts == {("court-7/ends", "travel"), ("court-7/ends", "loans")}
    accepted = [e["refs"] for e in events(installation, "entry.accepted")]
    assert [(r["entry_id"], r.get("extension")) for r in accepted] == [
        ("court-7/kept", None), ("court-7/ends", None), ("court-7/kept", 1)]
    assert len(installation.adapter("travel").holdings()) == 1


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_only_an_amend_with_a_new_assessment_restarts_the_review_clock(
        installation: Installation, prefect_api: str, make_entry: Make) -> None:
    loan = {"entry_id": "court-7/loan", "measures": [{"type": "credit.loan"}],
            "expires_at": iso_in(700)}
    publish(installation, make_entry(**loan))
    sync(installation)
    with transaction(installation.db) as session:  # the example reviews credit.loan yearly
        policy.apply(session, example(), utcnow())

    def review_at() -> tuple[int, datetime, dict[int, datetime]]:
        with transaction(installation.db) as session:
            (item,) = review.due(session, utcnow(), timedelta(days=3000))
            interval = timedelta(days=policy.active(session).review_days(["credit.loan"]))
            accepted = dict(session.execute(sa.select(
                EntryRevision.revision, EntryRevision.accepted_at)).all())
        return item.revision, item.review_at - interval, accepted

    # an amend that keeps the assessment (no extension needs none) does not postpone review
    publish(installation, make_entry(**loan, op="amend", revision=2))
    sync(installation)
    revision, started, accepted = review_at()
    assert revision == 2 and accepted[2] > accepted[1]
    assert started == accepted[1]
    # an amend with a new assessment does restart it
    publish(installation, make_entry(**loan, op="amend", revision=3,
                                     assessment=NEW_ASSESSMENT))
    sync(installation)
    revision, started, accepted = review_at()
    assert revision == 3 and started == accepted[3]
    # and a later trivial amend keeps that start
    publish(installation, make_entry(**loan, op="amend", revision=4,
                                     assessment=NEW_ASSESSMENT))
    sync(installation)
    revision, started, accepted = review_at()
    assert revision == 4 and started == accepted[3]
