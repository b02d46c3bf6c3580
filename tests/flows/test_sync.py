"""The sync flow through a real Prefect server, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws as jose_jws
from joserfc.jwk import OKPKey

from interdict import flows, issuers, schemas
from interdict.agencies import simulated
from interdict.directives import outbox
from interdict.entries import store
from interdict.installation import Installation
from interdict.keys import jws
from interdict.keys.jwk import b64u, public_jwk, unb64u
from interdict.storage import transaction, utcnow
from interdict.storage.models import (
    AuditEvent,
    Cursor,
    Directive,
    EntryRevision,
    QuarantinedEntry,
    Receipt,
)

pytestmark = pytest.mark.usefixtures("prefect_api")
Make = Callable[..., dict[str, Any]]


def publish(inst: Installation, *documents: dict[str, Any]) -> list[int]:
    return inst.public.publish(issuers.sign(inst, "court-7", documents))


def sync(inst: Installation) -> dict[str, Any]:
    return flows.sync(str(inst.home.root)).to_json()


def events(inst: Installation) -> list[dict[str, Any]]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()
        return [json.loads(r) for r in rows]


def rows(inst: Installation, model: Any) -> list[Any]:
    with transaction(inst.db) as session:
        return list(session.execute(sa.select(model)).scalars())


def received(inst: Installation, agency: str) -> list[str]:
    adapter = inst.adapter(agency)
    assert isinstance(adapter, simulated.SimulatedAgency)
    with adapter.db.connect() as conn:
        return list(conn.execute(sa.select(simulated.received.c.directive_id)).scalars())


def bad_tokens(inst: Installation, make: Make) -> dict[str, str]:
    """One token per refusal the issue names, each next to good entries in the same batch."""
    good = issuers.sign(inst, "court-7", [make(entry_id="court-7/tampered")])[0]
    head, body, signature = good.split(".")
    altered = {**json.loads(unb64u(body)), "reason": "altered in transit"}
    tampered = ".".join((head, b64u(jws.canonical_json(altered)), signature))
    stranger = jws.Signer(Ed25519PrivateKey.generate())
    return {
        "signature.invalid": tampered,
        "issuer.unknown": stranger.sign_document(
            make(issuer="ghost", entry_id="ghost/1"), jws.TYP_ENTRY),
        "issuer.measure_not_authorised": issuers.sign(inst, "court-7", [
            make(entry_id="court-7/card", measures=[{"type": "credit.card"}])])[0],
        "schema.violation": issuers.sign(inst, "court-7", [
            make(entry_id="court-7/no-redress", redress=None)])[0],
        "revision.replay": issuers.sign(inst, "court-7", [make(entry_id="court-7/a")])[0],
    }


def test_a_mixed_batch_accepts_every_good_entry_and_quarantines_each_bad_one(
        installation: Installation, make_entry: Make) -> None:
    bad = bad_tokens(installation, make_entry)
    good = issuers.sign(installation, "court-7", [
        make_entry(entry_id="court-7/a"), make_entry(entry_id="court-7/b"),
        make_entry(entry_id="court-7/a", op="amend", revision=2)])
    # interleave: good, bad, good, bad, ...; the replay comes after revision 2 of court-7/a
    tokens = [good[0], bad["signature.invalid"], good[1], bad["issuer.unknown"], good[2],
              bad["issuer.measure_not_authorised"], bad["schema.violation"],
              bad["revision.replay"]]
    installation.public.publish(tokens)
    report = sync(installation)
    assert (report["accepted"], report["quarantined"]) == (3, 5)
    quarantined = {q.reason: q.public_seq for q in rows(installation, QuarantinedEntry)}
    assert quarantined == {"signature.invalid": 2, "issuer.unknown": 4,
                           "issuer.measure_not_authorised": 6, "schema.violation": 7,
                           "revision.replay": 8}
    accepted = {(r.entry_id, r.revision) for r in rows(installation, EntryRevision)}
    assert accepted == {("court-7/a", 1), ("court-7/b", 1), ("court-7/a", 2)}
    assert rows(installation, Cursor)[0].position == 8
    assert report["directives"]["travel"]["delivered"] == 3  # a: impose+amend, b: impose
    assert report["checkpoint"]["size"] == len(events(installation))


@pytest.mark.parametrize("checks", ["0", "1", "dask"])
def test_entries_checked_ahead_in_a_worker_meet_the_same_refusals(
        checks: str, checks_on: Callable[[str], None], installation: Installation,
        make_entry: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of two: from the second batch on, its signatures were checked in a worker
    process or on a Dask cluster (keys/offload.py) while the one before was admitted; with
    neither, nothing is started and every signature is checked in place."""
    from interdict.flows.ingest import ingest_once
    from interdict.keys import offload

    checks_on(checks)
    monkeypatch.setattr(offload, "_LEAST_TO_SEND", 1)  # batches of two go to the worker
    started: list[offload.Pending] = []
    check = offload.check_elsewhere
    monkeypatch.setattr(offload, "check_elsewhere", lambda tokens, typ, keys: (
        started.append(check(tokens, typ, keys)), started[-1])[1])
    bad = bad_tokens(installation, make_entry)
    good = issuers.sign(installation, "court-7", [
        make_entry(entry_id="court-7/a"), make_entry(entry_id="court-7/b"),
        make_entry(entry_id="court-7/a", op="amend", revision=2)])
    installation.public.publish([good[0], bad["signature.invalid"], good[1],
                                 bad["issuer.unknown"], good[2], bad["revision.replay"]])
    while ingest_once(str(installation.home.root), 2).read:
        pass
    # batches 2 and 3 were checked ahead: elsewhere, their good entries verified
    hints = [pending.result().keys_by_token for pending in started]
    checked_ahead = [{good[1]}, {good[2], bad["revision.replay"]}, set()]  # replay: signed well
    assert [set(h) for h in hints] == (checked_ahead if checks != "0" else [])
    quarantined = {q.reason: q.public_seq for q in rows(installation, QuarantinedEntry)}
    assert quarantined == {"signature.invalid": 2, "issuer.unknown": 4, "revision.replay": 6}
    accepted = {(r.entry_id, r.revision) for r in rows(installation, EntryRevision)}
    assert accepted == {("court-7/a", 1), ("court-7/b", 1), ("court-7/a", 2)}


def test_running_sync_again_publishes_and_delivers_nothing_twice(
        installation: Installation, make_entry: Make) -> None:
    publish(installation, make_entry(entry_id="court-7/a"), make_entry(entry_id="court-7/b"))
    first = sync(installation)
    assert sum(a["delivered"] for a in first["directives"].values()) == 4
    second = sync(installation)
    assert second["accepted"] == second["quarantined"] == 0
    assert all(a == {"issued": 0, "delivered": 0, "rejected": 0, "flagged": 0, "failed": 0,
                     "dead_lettered": 0} for a in second["directives"].values())
    assert second["checkpoint"] == first["checkpoint"]
    for agency in ("travel", "loans"):
        ids = received(installation, agency)
        assert len(ids) == len(set(ids)) == 2
    # delivering the same directives again is answered "duplicate" and changes nothing
    directives = [d for d in rows(installation, Directive) if d.agency == "travel"]
    answers = installation.adapter("travel").deliver([d.jws for d in directives])
    statuses = {json.loads(unb64u(a.split(".")[1]))["status"] for a in answers}
    assert statuses == {"duplicate"}
    assert len(received(installation, "travel")) == 2


def test_every_action_is_an_audit_event(installation: Installation, make_entry: Make) -> None:
    publish(installation, make_entry(entry_id="court-7/a"),
            make_entry(entry_id="court-7/b", redress=None))
    sync(installation)
    log = events(installation)
    assert [e["seq"] for e in log] == list(range(len(log)))
    by_action = Counter(e["action"] for e in log)
    directives = rows(installation, Directive)
    receipts = rows(installation, Receipt)
    assert by_action["entry.accepted"] == 1 and by_action["entry.quarantined"] == 1
    assert by_action["directive.issued"] == len(directives) == 2
    assert by_action["receipt.recorded"] == len(receipts) == 2
    assert by_action["issuer.added"] == 1 and by_action["agency.registered"] == 3
    assert by_action["key.added"] == 2 + 1 + 3  # engine and log, issuer, three agencies
    issued = {e["refs"]["directive_id"] for e in log if e["action"] == "directive.issued"}
    recorded = {e["refs"]["directive_id"] for e in log if e["action"] == "receipt.recorded"}
    assert issued == recorded == {d.directive_id for d in directives}
    assert "Zhang" not in json.dumps(log) and "E12345678" not in json.dumps(log)
    assert [e["seq"] for e in log if schemas.problems("audit-event", e)] == []


def test_directives_verify_with_another_jose_library_and_carry_only_allowed_fields(
        installation: Installation, make_entry: Make) -> None:
    publish(installation, make_entry(measures=[{"type": "travel.air"}, {"type": "credit.loan"},
                                               {"type": "permit.business"}]))
    sync(installation)
    engine_key = OKPKey.import_key(public_jwk(installation.engine_signer.public_key))
    manifests = {a: installation.adapter(a).context.manifest for a in ("travel", "loans",
                                                                        "permits")}
    seen = set()
    for directive in rows(installation, Directive):
        decoded = jose_jws.deserialize_compact(directive.jws, engine_key, algorithms=["Ed25519"])
        document = json.loads(decoded.payload)
        manifest = manifests[document["agency"]]
        assert set(document["subject"]) <= set(manifest["subject_fields"])
        schemes = {i["scheme"] for i in document["subject"].get("identifiers", [])}
        assert schemes <= set(manifest["identifier_schemes"])
        assert {m["type"] for m in document["measures"]} <= set(manifest["measures"])
        seen.add(document["agency"])
    assert seen == {"travel", "loans", "permits"}
    stored = next(d for d in rows(installation, Directive) if d.agency == "permits")
    assert "birth_dates" not in json.loads(unb64u(stored.jws.split(".")[1]))["subject"]


def test_amend_and_revoke_lift_exactly_the_agencies_that_hold_the_entry(
        installation: Installation, make_entry: Make) -> None:
    travel, loans = installation.adapter("travel"), installation.adapter("loans")
    who = {"identifier": "national-id:110101198004010011"}
    publish(installation, make_entry())
    sync(installation)
    assert not travel.check_booking(**who).allowed and not loans.check_loan(**who).allowed
    publish(installation, make_entry(op="amend", revision=2, measures=[{"type": "travel.air"}]))
    report = sync(installation)
    assert report["directives"]["loans"]["issued"] == 1
    actions = {(d.agency, d.revision): d.action for d in rows(installation, Directive)}
    assert actions[("loans", 2)] == "lift" and actions[("travel", 2)] == "amend"
    assert not travel.check_booking(**who).allowed and loans.check_loan(**who).allowed
    publish(installation, make_entry(op="revoke", revision=3, subject=None, measures=None,
                                     expires_at=None, redress=None, listed_at=None,
                                     reason="judgment performed"))
    sync(installation)
    lifts = [d.agency for d in rows(installation, Directive) if d.revision == 3]
    assert lifts == ["travel"]
    assert travel.check_booking(**who).allowed
    assert all(d.status == "delivered" for d in rows(installation, Directive))


def test_an_entry_is_lifted_when_it_expires(installation: Installation, make_entry: Make) -> None:
    # Wide enough that ingest, the first step, runs before expiry even on a loaded machine;
    # holdings (not "in force now") so the check does not race the clock either.
    soon = utcnow() + timedelta(seconds=4)
    publish(installation, make_entry(expires_at=soon.isoformat().replace("+00:00", "Z")))
    sync(installation)
    travel = installation.adapter("travel")
    assert len(travel.holdings()) == 1
    time.sleep(max((soon - utcnow()).total_seconds(), 0) + 0.2)
    sync(installation)
    lifts = {d.agency for d in rows(installation, Directive) if d.action == "lift"}
    assert lifts == {"travel", "loans"}
    assert travel.holdings() == []
    assert [e["action"] for e in events(installation)].count("entry.expired") == 1


def test_a_crash_in_the_middle_of_a_batch_loses_and_doubles_nothing(
        installation: Installation, make_entry: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(installation, *(make_entry(entry_id=f"court-7/{i}") for i in range(5)))
    real_record = store.record

    def crash_after_writing(session: Any, outcomes: Any, position: int, *args: Any) -> None:
        real_record(session, outcomes, position, *args)
        raise RuntimeError("power cut")

    monkeypatch.setattr(store, "record", crash_after_writing)
    with pytest.raises(RuntimeError, match="power cut"):
        sync(installation)
    assert rows(installation, EntryRevision) == [] and rows(installation, Cursor) == []
    monkeypatch.setattr(store, "record", real_record)

    def crash_while_planning(*args: Any) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(outbox, "_flush", crash_while_planning)
    with pytest.raises(RuntimeError):
        sync(installation)
    assert len(rows(installation, EntryRevision)) == 5 and rows(installation, Directive) == []
    monkeypatch.undo()
    report = sync(installation)
    assert report["directives"]["travel"]["delivered"] == 5
    assert sorted(received(installation, "travel")) == sorted(
        d.directive_id for d in rows(installation, Directive) if d.agency == "travel")


def test_a_receipt_with_a_bad_signature_is_not_a_delivery(
        installation: Installation, make_entry: Make) -> None:
    publish(installation, make_entry(measures=[{"type": "travel.air"}]))
    travel = installation.adapter("travel")
    travel.__dict__["_signer"] = jws.Signer(Ed25519PrivateKey.generate())  # wrong receipt key
    report = sync(installation)
    assert report["directives"]["travel"] == {"issued": 1, "delivered": 0, "rejected": 0,
                                              "flagged": 0, "failed": 1, "dead_lettered": 0}
    (directive,) = rows(installation, Directive)
    assert directive.status == "pending" and directive.attempts == 1
    assert directive.last_error.startswith("receipt.unknown_key")
    failures = [e for e in events(installation) if e["action"] == "delivery.failed"]
    assert failures[0]["refs"]["directive_id"] == directive.directive_id


def test_an_agency_rejects_a_directive_whose_signature_does_not_verify(
        installation: Installation, make_entry: Make) -> None:
    publish(installation, make_entry(measures=[{"type": "travel.air"}]))
    sync(installation)
    (directive,) = rows(installation, Directive)
    head, body, signature = directive.jws.split(".")
    document = json.loads(unb64u(body))
    document["directive_id"] = "d-" + "1" * 32
    forged = ".".join((head, b64u(jws.canonical_json(document)), signature))
    (answer,) = installation.adapter("travel").deliver([forged])
    receipt = json.loads(unb64u(answer.split(".")[1]))
    assert receipt["status"] == "rejected" and "signature.invalid" in receipt["detail"]
    assert "d-" + "1" * 32 not in received(installation, "travel")
