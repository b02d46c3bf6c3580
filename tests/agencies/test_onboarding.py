"""Onboarding, shadow mode, disabling, enabling and offboarding agencies, through the real
sync flow on SQLite and PostgreSQL: no restriction (and no lift) is ever stranded."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict import flows, issuers
from interdict.agencies import conformance, lifecycle, onboarding, simulated
from interdict.cli import main
from interdict.directives import directive_id
from interdict.errors import DeliveryError, UsageError
from interdict.installation import Installation
from interdict.keys import jws
from interdict.storage import transaction
from interdict.storage.models import Agency, AuditEvent, Directive, TrustedKey
from tests.agencies.conftest import manifest_for

pytestmark = pytest.mark.usefixtures("prefect_api")
Make = Callable[..., dict[str, Any]]
NEW = "harbour-permits"  # the agency `agency new` scaffolds in these tests


# -- helpers --------------------------------------------------------------------------------

def publish(inst: Installation, *documents: dict[str, Any]) -> None:
    inst.public.publish(issuers.sign(inst, "court-7", documents))


def sync(inst: Installation) -> dict[str, Any]:
    return flows.sync(str(inst.home.root)).to_json()


def revoke(make: Make, entry_id: str, revision: int) -> dict[str, Any]:
    return make(entry_id=entry_id, op="revoke", revision=revision, subject=None, measures=None,
                expires_at=None, redress=None, listed_at=None, reason="judgment performed")


def directives(inst: Installation, agency: str) -> dict[tuple[str, int, str], str]:
    """(entry, revision, action) -> outbox status, for one agency."""
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(Directive).where(Directive.agency == agency)).scalars()
        return {(d.entry_id, d.revision, d.action): d.status for d in rows}


def events(inst: Installation, action: str) -> list[dict[str, Any]]:
    with transaction(inst.db) as session:
        rows = session.execute(sa.select(AuditEvent.event).order_by(AuditEvent.seq)).scalars()
        found = [json.loads(r) for r in rows]
    return [e for e in found if e["action"] == action]


def held(inst: Installation, agency: str) -> set[tuple[str, int]]:
    """What the agency's own system holds: (entry, revision) of each restriction in force."""
    adapter = inst.adapter(agency)
    assert isinstance(adapter, simulated.SimulatedAgency)
    with adapter.db.connect() as conn:
        rows = conn.execute(sa.select(simulated.restriction.c.entry_key,
                                      simulated.restriction.c.revision)
                            .where(simulated.restriction.c.status == "active")).all()
    return {(r.entry_key, r.revision) for r in rows}


def received(inst: Installation, agency: str) -> list[str]:
    adapter = inst.adapter(agency)
    assert isinstance(adapter, simulated.SimulatedAgency)
    with adapter.db.connect() as conn:
        return list(conn.execute(sa.select(simulated.received.c.directive_id)).scalars())


def did(entry: str, revision: int, agency: str, action: str = "impose") -> str:
    return directive_id("court-7", f"court-7/{entry}", revision, agency, action)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# -- `agency new`, installed, tested, onboarded with a backfill -----------------------------

@dataclass(frozen=True)
class Scaffolded:
    package: Path
    site: Path  # where pip installed it

    @property
    def manifest(self) -> Path:
        return self.package / "manifest.json"


@pytest.fixture(scope="session")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scaffolded]:
    """`interdict agency new`, then `pip install --target` (never into this environment)."""
    work = tmp_path_factory.mktemp("adapter")
    assert main(["agency", "new", NEW, "--dir", str(work),
                 "--measures", "travel.rail,permit.business"]) == 0
    site = work / "site"
    # Without `wheel` (an old setuptools needs it to build) pip builds in isolation instead.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("wheel") else []
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                             *isolation, "--target", str(site), str(work / NEW)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    yield Scaffolded(work / NEW, site)


@pytest.mark.slow
def test_an_adapter_from_agency_new_passes_the_kit_and_its_backfill_is_exactly_what_is_in_force(
        installation: Installation, make_entry: Make, scaffolded: Scaffolded,
        monkeypatch: pytest.MonkeyPatch, run: Callable[..., tuple[int, str, str]]) -> None:
    monkeypatch.syspath_prepend(str(scaffolded.site))
    publish(installation,
            make_entry(entry_id="court-7/rail-1", measures=[{"type": "travel.rail"}]),
            make_entry(entry_id="court-7/air-1", measures=[{"type": "travel.air"}]),
            make_entry(entry_id="court-7/permit-1",
                       measures=[{"type": "permit.business"}, {"type": "credit.loan"}]),
            make_entry(entry_id="court-7/rail-2", measures=[{"type": "travel.rail"}]))
    publish(installation,
            make_entry(entry_id="court-7/permit-1", op="amend", revision=2,
                       measures=[{"type": "permit.business"}]),
            revoke(make_entry, "court-7/rail-2", 2))
    sync(installation)
    home = str(installation.home.root)

    code, out, _ = run("--home", home, "agency", "test", str(scaffolded.manifest))
    assert code == 0 and out.count("  PASS  ") == len(conformance.NAMES)
    code, out, err = run("--home", home, "agency", "onboard", str(scaffolded.manifest),
                         "--backfill")
    assert code == 0, err
    assert f"onboarded {NEW} (live)" in out and "backfill: 2 directives queued" in out
    report = sync(installation)

    expected = {did("rail-1", 1, NEW), did("permit-1", 2, NEW)}
    assert report["directives"][NEW]["delivered"] == 2
    assert sorted(received(installation, NEW)) == sorted(expected)
    assert set(installation.adapter(NEW).holdings()) == expected
    assert held(installation, NEW) == {("court-7/rail-1", 1), ("court-7/permit-1", 2)}
    assert directives(installation, NEW) == {("court-7/rail-1", 1, "impose"): "delivered",
                                             ("court-7/permit-1", 2, "impose"): "delivered"}
    (kit,) = events(installation, "agency.conformance")
    assert kit["outcome"] == "passed" and kit["refs"]["agency"] == NEW
    (released,) = events(installation, "agency.released")
    assert released["refs"] == {"agency": NEW, "backfill": True, "issued": 2, "released": 0,
                                "superseded": 0}
    with transaction(installation.db) as session:
        manifest = session.get(Agency, NEW).manifest  # type: ignore[union-attr]
        (key,) = session.execute(sa.select(TrustedKey).where(TrustedKey.owner_id == NEW)).scalars()
    # the key the adapter made in its data folder is the one the manifest and trust store name
    assert len(manifest["public_keys"]) == 1 and key.kid == installation.adapter(NEW)._signer.kid  # type: ignore[attr-defined]
    # from now on it is routed like any other agency
    publish(installation, make_entry(entry_id="court-7/rail-3", measures=[{"type": "travel.rail"}]))
    sync(installation)
    assert ("court-7/rail-3", 1) in held(installation, NEW)


@pytest.mark.parametrize(("adapter", "failing"), [
    ("unsigned-receipts", "impose"), ("not-idempotent", "duplicate"), ("ignores-lifts", "lift")])
def test_a_broken_adapter_fails_the_kit_at_onboarding_and_is_not_registered(
        installation: Installation, broken_adapters: dict[str, str],
        write_manifest: Callable[[dict[str, Any]], Path],
        run: Callable[..., tuple[int, str, str]], adapter: str, failing: str) -> None:
    path = write_manifest(manifest_for(adapter))
    code, out, err = run("--home", str(installation.home.root), "agency", "onboard", str(path),
                         "--backfill")
    assert code == 1
    assert f"  FAIL  {failing} " in out
    assert err.startswith(f"error[agency.conformance_failed]: agency '{adapter}' failed the "
                          "conformance kit") and "nothing was registered" in err
    with transaction(installation.db) as session:
        assert session.get(Agency, adapter) is None
        assert not session.execute(sa.select(TrustedKey).where(
            TrustedKey.owner_id == adapter)).first()
    (kit,) = events(installation, "agency.conformance")
    assert kit["outcome"] == "failed" and failing in kit["refs"]["failed"].split(",")
    assert not events(installation, "agency.registered")[3:]  # only the three built-ins


def test_an_id_in_use_is_refused_before_the_kit_runs(installation: Installation) -> None:
    with pytest.raises(UsageError, match=r"agency 'travel' is already registered \(live\)"):
        onboarding.onboard(installation, onboarding.builtin_manifest("travel"))
    assert events(installation, "agency.conformance") == []


# -- shadow mode ----------------------------------------------------------------------------

def test_shadow_computes_and_logs_directives_and_enable_releases_what_is_in_force(
        installation: Installation, make_entry: Make) -> None:
    rail = manifest_for("travel", "rail", measures=["travel.rail"])
    done = onboarding.onboard(installation, rail, shadow=True)
    assert done.status == "shadow" and done.conformance.ok
    publish(installation,
            make_entry(entry_id="court-7/a", measures=[{"type": "travel.rail"}]),
            make_entry(entry_id="court-7/b", measures=[{"type": "travel.rail"}]))
    publish(installation, revoke(make_entry, "court-7/b", 2))
    sync(installation)
    assert directives(installation, "rail") == {
        ("court-7/a", 1, "impose"): "shadow", ("court-7/b", 1, "impose"): "shadow",
        ("court-7/b", 2, "lift"): "shadow"}
    assert received(installation, "rail") == []
    shadowed = [e for e in events(installation, "directive.issued")
                if e["refs"]["agency"] == "rail"]
    assert {e["refs"]["status"] for e in shadowed} == {"shadow"} and len(shadowed) == 3

    previous, released = lifecycle.enable(installation, "rail")
    assert previous == "shadow" and released.to_json() == {"released": 1, "issued": 0,
                                                           "superseded": 0}
    sync(installation)
    assert received(installation, "rail") == [did("a", 1, "rail")]  # the stored directive
    assert held(installation, "rail") == {("court-7/a", 1)}
    assert directives(installation, "rail")[("court-7/b", 1, "impose")] == "shadow"
    (event,) = events(installation, "directive.released")
    assert event["refs"]["previous"] == "shadow" and event["outcome"] == "pending"


# -- disabled, then enabled -----------------------------------------------------------------

def test_a_disabled_agency_gets_no_impositions_its_lifts_wait_and_enable_catches_it_up(
        installation: Installation, make_entry: Make,
        run: Callable[..., tuple[int, str, str]]) -> None:
    air = [{"type": "travel.air"}]
    publish(installation, make_entry(entry_id="court-7/a", measures=air),
            make_entry(entry_id="court-7/c", measures=air))
    sync(installation)
    home = str(installation.home.root)
    code, out, _ = run("--home", home, "agency", "disable", "travel")
    assert code == 0 and "disabled travel (was live)" in out
    publish(installation, make_entry(entry_id="court-7/b", measures=air),
            revoke(make_entry, "court-7/a", 2),
            make_entry(entry_id="court-7/c", op="amend", revision=2, measures=air,
                       reason="amended reason"))
    sync(installation)
    outbox = directives(installation, "travel")
    assert outbox[("court-7/b", 1, "impose")] == "withheld"
    assert outbox[("court-7/c", 2, "amend")] == "withheld"
    assert outbox[("court-7/a", 2, "lift")] == "pending"  # queued, not stranded
    assert held(installation, "travel") == {("court-7/a", 1), ("court-7/c", 1)}  # nothing sent
    code, out, _ = run("--home", home, "agency", "show", "travel", "--json")
    shown = json.loads(out)
    assert shown["status"] == "disabled" and shown["pending"] == {"lift": 1}

    code, out, _ = run("--home", home, "agency", "enable", "travel", "--json")
    assert json.loads(out) == {"agency": "travel", "previous": "disabled", "released": 1,
                               "issued": 1, "superseded": 1}
    sync(installation)
    assert held(installation, "travel") == {("court-7/b", 1), ("court-7/c", 2)}
    outbox = directives(installation, "travel")
    assert outbox[("court-7/c", 2, "amend")] == "superseded"
    assert outbox[("court-7/c", 2, "impose")] == "delivered"
    assert [e["refs"]["previous"] for e in events(installation, "agency.disabled")] == ["live"]
    assert [e["refs"]["previous"] for e in events(installation, "agency.enabled")] == [
        "disabled"]
    code, out, _ = run("--home", home, "agency", "list", "--json")
    assert {a["id"]: a["status"] for a in json.loads(out)}["travel"] == "live"


# -- offboarding ----------------------------------------------------------------------------

def test_offboarding_refuses_while_a_lift_waits_then_delivers_it_and_routes_nothing_more(
        installation: Installation, make_entry: Make,
        run: Callable[..., tuple[int, str, str]]) -> None:
    air = [{"type": "travel.air"}]
    publish(installation, make_entry(entry_id="court-7/a", measures=air))
    sync(installation)
    lifecycle.disable(installation, "travel")
    publish(installation, revoke(make_entry, "court-7/a", 2))
    sync(installation)
    home = str(installation.home.root)
    code, _, err = run("--home", home, "agency", "offboard", "travel")
    assert code == 1 and err.startswith("error[agency.pending]: agency 'travel' has 1 "
                                        "directive waiting to be delivered (1 lift). A lift "
                                        "left undelivered leaves a person restricted.")
    assert held(installation, "travel") == {("court-7/a", 1)}

    code, out, err = run("--home", home, "agency", "offboard", "travel", "--pending", "deliver",
                         "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["delivered"] == 1 and done["cancelled"] == []
    assert done["holdings_reported"] == done["holdings_expected"] == []
    assert held(installation, "travel") == set()
    assert directives(installation, "travel")[("court-7/a", 2, "lift")] == "delivered"
    with transaction(installation.db) as session:
        assert session.get(Agency, "travel").status == "offboarded"  # type: ignore[union-attr]
        keys = session.execute(sa.select(TrustedKey.status).where(
            TrustedKey.owner_id == "travel")).scalars().all()
    assert keys == ["retired"]
    (event,) = events(installation, "agency.offboarded")
    assert event["refs"]["previous"] == "disabled" and event["refs"]["delivered"] == 1

    publish(installation, make_entry(entry_id="court-7/z", measures=air))
    report = sync(installation)
    assert "travel" not in report["directives"]
    assert ("court-7/z", 1, "impose") not in directives(installation, "travel")
    with pytest.raises(UsageError, match="was offboarded; its status can no longer change"):
        lifecycle.enable(installation, "travel")
    with pytest.raises(UsageError, match="an agency id is never reused"):
        onboarding.onboard(installation, onboarding.builtin_manifest("travel"))


def test_offboarding_with_cancel_records_each_cancelled_directive_and_what_it_still_held(
        installation: Installation, make_entry: Make) -> None:
    air = [{"type": "travel.air"}]
    publish(installation, make_entry(entry_id="court-7/a", measures=air),
            make_entry(entry_id="court-7/b", measures=air))
    sync(installation)
    lifecycle.disable(installation, "travel")
    publish(installation, revoke(make_entry, "court-7/a", 2),
            make_entry(entry_id="court-7/c", measures=air))
    sync(installation)

    done = lifecycle.offboard(installation, "travel", pending_action="cancel")
    assert sorted(done.cancelled) == sorted([did("a", 2, "travel", "lift"), did("c", 1, "travel")])
    still = sorted([did("a", 1, "travel"), did("b", 1, "travel")])  # the lift never went out
    assert done.reported == done.expected == still
    cancelled = events(installation, "directive.cancelled")
    assert Counter(e["refs"]["previous"] for e in cancelled) == {"pending": 1, "withheld": 1}
    holdings = {e["refs"]["directive_id"]: e["refs"] for e in events(installation,
                                                                      "agency.holding")}
    assert sorted(holdings) == still
    assert all(r["expected"] and r["reported"] for r in holdings.values())
    assert holdings[still[0]]["entry_id"] in {"court-7/a", "court-7/b"}
    assert set(directives(installation, "travel").values()) == {"delivered", "cancelled"}


def test_offboarding_with_deliver_refuses_when_the_agency_cannot_take_its_lifts(
        installation: Installation, make_entry: Make) -> None:
    publish(installation, make_entry(entry_id="court-7/a", measures=[{"type": "travel.air"}]))
    sync(installation)
    lifecycle.disable(installation, "travel")
    publish(installation, revoke(make_entry, "court-7/a", 2))
    sync(installation)
    travel = installation.adapter("travel")
    travel.__dict__["_signer"] = jws.Signer(Ed25519PrivateKey.generate())  # receipts now fail
    with pytest.raises(DeliveryError, match=r"1 directive to travel could not be delivered "
                                            r"\(1 lift\)") as refused:
        lifecycle.offboard(installation, "travel", pending_action="deliver")
    assert refused.value.code == "agency.undelivered"
    with transaction(installation.db) as session:
        assert session.get(Agency, "travel").status == "disabled"  # type: ignore[union-attr]
    assert events(installation, "agency.offboarded") == []
    assert events(installation, "delivery.failed")[-1]["outcome"] == "receipt.unknown_key"
