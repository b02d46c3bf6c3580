"""Issuer keys over time (add, retire, revoke) and quarantined entries retried once the trust
store is fixed, on SQLite and PostgreSQL, through the library and through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import issuers
from interdict.cli import main
from interdict.entries import store
from interdict.errors import InterdictError
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.keys import jws, keyfile, truststore
from interdict.keys.jwk import public_key_to_pem
from interdict.publicdb import published_entry
from interdict.storage import transaction, utcnow
from interdict.storage.models import AuditEvent, EntryRevision, QuarantinedEntry, TrustedKey

Make = Callable[..., dict[str, Any]]
ACTOR = "operator:test"


def ingest(inst: Installation) -> None:
    ingest_once(str(inst.home.root))


def outcomes(inst: Installation) -> dict[str, str]:
    """entry_id -> 'accepted' or the quarantine reason, for every row read so far."""
    with transaction(inst.db) as session:
        accepted = session.execute(sa.select(EntryRevision.entry_id, EntryRevision.public_seq))
        found = {seq: entry_id for entry_id, seq in accepted}
        refused = session.execute(sa.select(QuarantinedEntry.public_seq, QuarantinedEntry.reason)
                                  .where(QuarantinedEntry.released == sa.false()))
        return {**{e: "accepted" for e in found.values()},
                **{f"seq-{seq}": reason for seq, reason in refused}}


def actions(inst: Installation) -> list[dict[str, Any]]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()
        return [json.loads(r) for r in rows]


def publish_with(inst: Installation, signer: jws.Signer, *documents: dict[str, Any]) -> list[int]:
    return inst.public.publish([signer.sign_document(d, jws.TYP_ENTRY) for d in documents])


def change(inst: Installation, what: Callable[..., Any], **kwargs: Any) -> Any:
    with transaction(inst.db) as session:
        return what(session, actor=ACTOR, **kwargs)


def test_rotation_keeps_old_signatures_valid_until_the_old_key_is_retired(
        installation: Installation, make_entry: Make) -> None:
    old = installation.issuer_signer("court-7")
    publish_with(installation, old, make_entry(entry_id="court-7/before-retire"))
    new_kid = issuers.add_key(installation, "court-7")
    new = installation.issuer_signer("court-7")
    assert new.kid == new_kid != old.kid
    archived = installation.issuer_key_path("court-7").with_name(f"issuer-court-7.{old.kid}.key")
    assert jws.Signer(keyfile.load(archived)).kid == old.kid  # the old private key is kept
    change(installation, truststore.retire_key, owner_kind="issuer", owner_id="court-7",
           kid=old.kid)
    publish_with(installation, old, make_entry(entry_id="court-7/after-retire"))
    publish_with(installation, new, make_entry(entry_id="court-7/new-key"))
    ingest(installation)
    assert outcomes(installation) == {"court-7/before-retire": "accepted",
                                      "court-7/new-key": "accepted",
                                      "seq-2": "key.outside_validity"}
    with transaction(installation.db) as session:
        retired = session.get(TrustedKey, old.kid)
        assert retired.status == "retired" and retired.valid_until <= utcnow()


def test_a_revoked_key_verifies_nothing_not_yet_ingested(
        installation: Installation, make_entry: Make) -> None:
    signer = installation.issuer_signer("court-7")
    publish_with(installation, signer, make_entry(entry_id="court-7/ingested"))
    ingest(installation)
    publish_with(installation, signer, make_entry(entry_id="court-7/published-before-revoke"))
    change(installation, truststore.revoke_key, owner_kind="issuer", owner_id="court-7",
           kid=signer.kid)
    ingest(installation)
    assert outcomes(installation) == {"court-7/ingested": "accepted", "seq-2": "key.revoked"}


def test_every_key_change_is_an_audit_event(installation: Installation) -> None:
    first = installation.issuer_signer("court-7").kid
    second = jws.Signer(Ed25519PrivateKey.generate())
    issuers.add_key(installation, "court-7", public_key_pem=public_key_to_pem(second.public_key),
                    actor=ACTOR)
    change(installation, truststore.retire_key, owner_kind="issuer", owner_id="court-7",
           kid=first)
    change(installation, truststore.revoke_key, owner_kind="issuer", owner_id="court-7",
           kid=first)
    events = [e for e in actions(installation) if e["action"].startswith("key.")
              and e["refs"].get("owner") == "court-7"]
    assert [(e["action"], e["refs"]["kid"]) for e in events] == [
        ("key.added", first), ("key.added", second.kid), ("key.retired", first),
        ("key.revoked", first)]
    assert events[2]["refs"]["valid_until"].endswith("Z")
    assert events[3]["refs"]["previous"] == "retired"
    assert all(e["actor"] == ACTOR for e in events[1:])


def test_key_changes_refuse_what_they_cannot_do(installation: Installation) -> None:
    issuers.add(installation, "tax-office", name="Tax office", measures=["credit.loan"])
    court = installation.issuer_signer("court-7").kid
    tax = installation.issuer_signer("tax-office").kid

    def code(what: Callable[..., Any], **kwargs: Any) -> str:
        with pytest.raises(InterdictError) as caught:
            change(installation, what, **kwargs)
        return caught.value.code

    retire, revoke = truststore.retire_key, truststore.revoke_key
    assert code(retire, owner_kind="issuer", owner_id="court-7", kid="no-such-kid") \
        == "key.unknown"
    assert code(revoke, owner_kind="issuer", owner_id="court-7", kid=tax) == "key.owned_elsewhere"
    with transaction(installation.db) as session:
        agency_kid = next(iter(truststore.TrustSnapshot.load(session).keys_of("agency")))
    assert code(retire, owner_kind="issuer", owner_id="court-7", kid=agency_kid) \
        == "key.owned_elsewhere"
    change(installation, retire, owner_kind="issuer", owner_id="court-7", kid=court)
    assert code(retire, owner_kind="issuer", owner_id="court-7", kid=court) == "key.not_active"
    change(installation, revoke, owner_kind="issuer", owner_id="court-7", kid=court)
    assert code(revoke, owner_kind="issuer", owner_id="court-7", kid=court) == "key.not_active"
    pem = public_key_to_pem(installation.issuer_signer("tax-office").public_key)
    for issuer, expected in (("ghost", "issuer.unknown"), ("tax-office", "key.exists"),
                             ("court-7", "key.owned_elsewhere")):
        with pytest.raises(InterdictError) as caught:
            issuers.add_key(installation, issuer, public_key_pem=pem)
        assert caught.value.code == expected


# -- the CLI ---------------------------------------------------------------------------------

def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_issuer_key_commands(installation: Installation, capsys: pytest.CaptureFixture[str],
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERDICT_HOME", str(installation.home.root))
    first = installation.issuer_signer("court-7").kid
    other = jws.Signer(Ed25519PrivateKey.generate())
    pem = tmp_path / "other.pem"
    pem.write_text(public_key_to_pem(other.public_key))
    code, out, _ = run(capsys, "issuer", "key", "add", "court-7", "--public-key", str(pem),
                       "--valid-from", "2026-01-01T00:00:00Z")
    assert code == 0 and other.kid in out
    code, out, _ = run(capsys, "issuer", "key", "retire", "court-7", first)
    assert code == 0 and "retired" in out
    code, _, err = run(capsys, "issuer", "key", "revoke", "court-7", "nope")
    assert code == 1 and err.startswith("error[key.unknown]")
    code, _, err = run(capsys, "issuer", "key", "retire", "court-7", first)
    assert code == 1 and err.startswith("error[key.not_active]")
    code, _, err = run(capsys, "issuer", "key", "add", "court-7", "--public-key", str(pem),
                       "--valid-from", "yesterday")
    assert code == 1 and err.startswith("error[usage.timestamp]")
    code, out, _ = run(capsys, "issuer", "show", "court-7", "--json")
    shown = json.loads(out)
    keys = {k["kid"]: k for k in shown["keys"]}
    assert keys[first]["status"] == "retired" and keys[first]["valid_until"]
    assert keys[other.kid] == {**keys[other.kid], "status": "active",
                               "valid_from": "2026-01-01T00:00:00Z", "valid_until": None}
    assert shown["local_kid"] == first and shown["measures"]
    code, out, _ = run(capsys, "issuer", "key", "add", "court-7")  # rotates the local key
    assert code == 0
    assert json.loads(run(capsys, "issuer", "show", "court-7", "--json")[1])["local_kid"] \
        == installation.issuer_signer("court-7").kid != first
    code, _, err = run(capsys, "issuer", "show", "ghost")
    assert code == 1 and err.startswith("error[issuer.unknown]")


def test_a_key_id_that_begins_with_a_dash_is_not_an_option(
        installation: Installation, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Base64url thumbprints begin with "-" one time in 64; this one also holds an "h", which
    read as a cluster of short options would have been -h, help."""
    monkeypatch.setenv("INTERDICT_HOME", str(installation.home.root))
    dashed = next(signer for signer in (jws.Signer(Ed25519PrivateKey.generate())
                                        for _ in range(100_000))
                  if signer.kid.startswith("-") and "h" in signer.kid)
    pem = tmp_path / "dashed.pem"
    pem.write_text(public_key_to_pem(dashed.public_key))
    assert run(capsys, "issuer", "key", "add", "court-7", "--public-key", str(pem))[0] == 0
    code, out, err = run(capsys, "issuer", "key", "retire", "court-7", dashed.kid)
    assert code == 0 and f"key {dashed.kid} retired" in out, err
    code, out, err = run(capsys, "issuer", "key", "revoke", "court-7", dashed.kid)
    assert code == 0 and f"key {dashed.kid} revoked" in out, err


# -- quarantine retry --------------------------------------------------------------------------

def test_quarantine_retry_after_a_key_was_added_late(
        installation: Installation, make_entry: Make, capsys: pytest.CaptureFixture[str],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERDICT_HOME", str(installation.home.root))
    new_key = jws.Signer(Ed25519PrivateKey.generate())  # the court's new key, not registered yet
    before = utcnow() - timedelta(minutes=1)
    publish_with(installation, new_key, make_entry(entry_id="court-7/late-key"),
                 make_entry(entry_id="court-7/late-key-bad", redress=None))
    publish_with(installation, installation.issuer_signer("court-7"),
                 make_entry(entry_id="court-7/meanwhile"))
    ingest(installation)
    assert outcomes(installation) == {"seq-1": "header.kid_unknown", "seq-2": "header.kid_unknown",
                                      "court-7/meanwhile": "accepted"}
    code, out, _ = run(capsys, "quarantine", "retry", "--json")  # nothing fixed yet
    assert code == 0 and {r["outcome"] for r in json.loads(out)} == {"refused"}

    pem = tmp_path / "new.pem"
    pem.write_text(public_key_to_pem(new_key.public_key))
    assert run(capsys, "issuer", "key", "add", "court-7", "--public-key", str(pem),
               "--valid-from", before.isoformat())[0] == 0
    code, out, _ = run(capsys, "quarantine", "retry", "--json")
    retried = {r["seq"]: r for r in json.loads(out)}
    assert retried[1]["outcome"] == "released" and retried[1]["was"] == "header.kid_unknown"
    assert retried[2]["outcome"] == "refused" and retried[2]["reason"] == "schema.violation"
    assert "/redress" in retried[2]["detail"] or "redress" in retried[2]["detail"]
    listed = json.loads(run(capsys, "quarantine", "list", "--json")[1])
    assert listed == [{"seq": 2, "reason": "schema.violation", "detail": retried[2]["detail"]}]
    shown = json.loads(run(capsys, "quarantine", "show", "1", "--json")[1])
    assert shown["released"] is True
    with transaction(installation.db) as session:
        revision = session.execute(sa.select(EntryRevision).where(
            EntryRevision.entry_id == "court-7/late-key")).scalar_one()
    assert (revision.public_seq, revision.kid, revision.routed) == (1, new_key.kid, False)
    events = [e for e in actions(installation) if e["refs"].get("public_seq") in (1, 2)]
    assert [e["action"] for e in events][-3:] == ["entry.accepted", "entry.released",
                                                   "entry.retry_refused"]
    assert events[-1]["outcome"] == "schema.violation"
    # released once: a second retry finds only the one still refused
    assert [r.seq for r in store.retry(installation.db, installation.public)] == [2]


def test_retry_leaves_a_row_whose_public_bytes_changed(
        installation: Installation, make_entry: Make) -> None:
    stranger = jws.Signer(Ed25519PrivateKey.generate())
    publish_with(installation, stranger, make_entry())
    ingest(installation)
    forged = installation.issuer_signer("court-7").sign_document(make_entry(), jws.TYP_ENTRY)
    with installation.public.engine.begin() as conn:  # someone rewrites the public row
        conn.execute(published_entry.update().where(published_entry.c.seq == 1)
                     .values(jws=forged))
    (result,) = store.retry(installation.db, installation.public, [1])
    assert (result.outcome, result.reason) == ("unavailable", "header.kid_unknown")
    assert outcomes(installation) == {"seq-1": "header.kid_unknown"}
    assert not any(e["action"] in ("entry.released", "entry.accepted")
                   for e in actions(installation))
