"""Entry lifecycle points the other suites leave open: a revision gap is accepted and recorded
in the audit log, the policy's cap on duration holds at its exact boundary, and v1 entries
stored before the entry gate keep working."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import issuers
from interdict.entries import Accepted, Admission, Policy, Published, Refused
from interdict.entries.admission import DEFAULT_MAX_DURATION
from interdict.flows.ingest import ingest_once
from interdict.installation import Installation
from interdict.keys import jws
from interdict.keys.truststore import KeyInfo, TrustSnapshot
from interdict.storage import transaction
from interdict.storage.models import AuditEvent, QuarantinedEntry

Make = Callable[..., dict[str, Any]]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_a_revision_gap_is_accepted_and_recorded(installation: Installation,
                                                 make_entry: Make) -> None:
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(), make_entry(op="amend", revision=4), make_entry(op="amend", revision=5)]))
    ingest_once(str(installation.home.root))
    with transaction(installation.db) as session:
        rows = session.execute(sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()
        accepted = [json.loads(r)["refs"] for r in rows if b'"entry.accepted"' in r]
    assert [(e["revision"], e.get("gap_after")) for e in accepted] == [(1, None), (4, 1),
                                                                        (5, None)]


def _admit(make_entry: Make, lasts: timedelta, policy: Policy | None = None
           ) -> Accepted | Refused:
    signer = jws.Signer(Ed25519PrivateKey.generate())
    trust = TrustSnapshot({signer.kid: KeyInfo(signer.kid, "issuer", "court-7",
                                               signer.public_key, "active",
                                               NOW - timedelta(days=1), None)},
                          {"court-7": frozenset({"travel.air", "credit.loan"})})
    start = NOW - timedelta(hours=1)
    document = make_entry(effective_from=start.isoformat().replace("+00:00", "Z"),
                          expires_at=(start + lasts).isoformat().replace("+00:00", "Z"))
    token = signer.sign_document(document, jws.TYP_ENTRY)
    return Admission(trust, {}, NOW, policy or Policy()).admit(Published(1, token, NOW))


def test_the_duration_cap_holds_at_its_boundary(make_entry: Make) -> None:
    assert timedelta(days=1830) == DEFAULT_MAX_DURATION  # five years, as documented
    assert isinstance(_admit(make_entry, DEFAULT_MAX_DURATION), Accepted)
    beyond = _admit(make_entry, DEFAULT_MAX_DURATION + timedelta(seconds=1))
    assert isinstance(beyond, Refused) and beyond.reason == "policy.duration"
    shorter = _admit(make_entry, timedelta(days=31), Policy(max_duration=timedelta(days=30)))
    assert isinstance(shorter, Refused) and "allows 30" in shorter.detail


def test_v1_entries_stored_before_the_gate_keep_working(
        installation: Installation, make_entry: Make, prefect_api: str,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An installation upgraded with a v1 entry in force: its lift goes out (a v1 revoke is
    still accepted), the subject report shows it, and the audit bundle verifies."""
    from interdict import flows
    from interdict.accountability import subject
    from interdict.auditlog import log
    from interdict.auditlog.export import export
    from interdict.auditlog.verify import verify_bundle
    from interdict.entries import gate
    from interdict.storage.models import Directive

    v1 = {"schema": "interdict/entry/v1", "decision": None, "assessment": None, "notice": None}
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(entry_id="court-7/old", **v1)]))
    with monkeypatch.context() as before_the_gate:  # what the version before v2 accepted
        before_the_gate.setattr(gate, "v1_problem", lambda document: None)
        assert flows.sync(str(installation.home.root)).to_json()["accepted"] == 1
    installation.public.publish(issuers.sign(installation, "court-7", [
        make_entry(entry_id="court-7/old", **v1, op="amend", revision=2),
        make_entry(entry_id="court-7/old", **v1, op="revoke", revision=3, subject=None,
                   measures=None, expires_at=None, redress=None, listed_at=None)]))
    report = flows.sync(str(installation.home.root)).to_json()
    assert (report["accepted"], report["quarantined"]) == (1, 1)  # the v1 amend is refused
    with transaction(installation.db) as session:
        actions = sorted((d.agency, d.action) for d in session.execute(
            sa.select(Directive)).scalars())
        assert session.execute(sa.select(QuarantinedEntry.reason)).scalar_one() == \
            "gate.entry_v1"
    assert actions == [("loans", "impose"), ("loans", "lift"), ("travel", "impose"),
                       ("travel", "lift")]
    (measure,) = subject.report(installation, subject.SubjectId.parse("passport:E12345678"),
                                "SAR 1")["measures"]
    assert measure["status"] == "revoked" and measure["decision"] is None
    export(installation, tmp_path / "bundle", actor=log.operator())
    assert verify_bundle(tmp_path / "bundle", vkey=installation.log_signer.vkey()).ok
