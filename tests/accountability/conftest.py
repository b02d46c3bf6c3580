"""Helpers for the accountability suites: real entries published, synced through Prefect."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from interdict import flows, issuers
from interdict.installation import Installation
from interdict.storage import transaction
from interdict.storage.models import AuditEvent

Make = Callable[..., dict[str, Any]]
ZHANG = "passport:E12345678"  # conftest.BASE_ENTRY's subject


def publish(inst: Installation, *documents: dict[str, Any]) -> list[int]:
    return inst.public.publish(issuers.sign(inst, "court-7", documents))


def sync(inst: Installation) -> dict[str, Any]:
    return flows.sync(str(inst.home.root)).to_json()


def events(inst: Installation, action: str | None = None) -> list[dict[str, Any]]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()
        found = [json.loads(r) for r in rows]
    return [e for e in found if action is None or e["action"] == action]


def revoke(make: Make, entry_id: str, revision: int = 2) -> dict[str, Any]:
    return make(entry_id=entry_id, op="revoke", revision=revision, subject=None, measures=None,
                expires_at=None, listed_at=None, redress=None,
                reason="judgment performed: restriction lifted")


def other_person(make: Make, entry_id: str) -> dict[str, Any]:
    return make(entry_id=entry_id, subject={
        "type": "person", "names": [{"value": "Li Na", "kind": "primary"}],
        "identifiers": [{"scheme": "passport", "value": "G99887766", "country": "CN"}],
        "birth_dates": [{"date": "1990-02-03"}]}, reason="unpaid fine, other case")


@pytest.fixture
def synced(installation: Installation, prefect_api: str, make_entry: Make) -> Installation:
    """Zhang Wei: case-1 in force at travel and loans, case-2 revoked (lifted at both);
    Li Na: case-3 in force at travel and loans."""
    publish(installation, make_entry(entry_id="court-7/case-1"),
            make_entry(entry_id="court-7/case-2", measures=[{"type": "travel.rail"}]),
            other_person(make_entry, "court-7/case-3"))
    sync(installation)
    publish(installation, revoke(make_entry, "court-7/case-2"))
    sync(installation)
    return installation
