"""Shared fixtures. Everything is real: Ed25519 keys, SQLite files, a PostgreSQL server, a
Prefect server (the test harness's temporary one), the built-in agencies' own databases."""

from __future__ import annotations

import copy
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

# Key files stay real and encrypted; only bcrypt's work factor is lowered so tests stay fast.
os.environ.setdefault("INTERDICT_KEY_KDF_ROUNDS", "1")
os.environ.pop("INTERDICT_HOME", None)
os.environ.pop("INTERDICT_DATABASE_URL", None)
os.environ.pop("INTERDICT_PUBLIC_DATABASE_URL", None)
os.environ.pop("INTERDICT_DASK_SCHEDULER", None)

from interdict.flows.runtime import apply_defaults

apply_defaults()

from interdict import issuers  # noqa: E402
from interdict.agencies import onboarding  # noqa: E402
from interdict.home import Home  # noqa: E402
from interdict.installation import Installation  # noqa: E402
from interdict.storage import engine_for  # noqa: E402

POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
COURT_MEASURES = ["travel.air", "travel.rail", "credit.loan", "permit.business"]


# -- Prefect ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect server for the session (the documented prefect_test_harness)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from interdict.flows import flow_settings

    with prefect_test_harness(server_startup_timeout=180), flow_settings():
        yield str(PREFECT_API_URL.value())


# -- databases ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped at the end."""
    admin_url = os.environ.get("INTERDICT_TEST_POSTGRES_URL", POSTGRES_DEFAULT)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {admin_url}: {type(exc).__name__}"
        if os.environ.get("INTERDICT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (INTERDICT_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    name = f"interdict_test_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    yield url
    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# -- where signatures are checked (keys/offload.py) -----------------------------------------

@pytest.fixture(scope="module")
def dask_scheduler() -> Iterator[str]:
    """A real Dask cluster on this machine: a scheduler and one worker process, per module,
    so that its threads do not run on beside unrelated tests."""
    distributed = pytest.importorskip("distributed", reason="the Dask tests need distributed "
                                      "(pip install -e '.[test]')")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def checks_on(monkeypatch: pytest.MonkeyPatch,
              request: pytest.FixtureRequest) -> Iterator[Callable[[str], None]]:
    """Sends this test's signature checks to ``"0"``: nowhere (in place), ``"1"``: a worker
    process of its own, ``"dask"``: the Dask cluster (and signing stays in place)."""
    from interdict.keys import cluster, offload

    monkeypatch.setattr(offload, "_POOL", None)
    monkeypatch.setattr(offload, "_BROKEN", threading.Event())
    monkeypatch.setattr(cluster, "_FAILED", set())

    def place(where: str) -> None:
        if where == "dask":
            monkeypatch.setenv(cluster.SCHEDULER_ENV, request.getfixturevalue("dask_scheduler"))
            where = "0"
        monkeypatch.setenv(offload.WORKERS_ENV, where)

    yield place
    offload.shutdown()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The operational database, once per backend: tests using it run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'interdict.db'}"
    url: str = request.getfixturevalue("postgres_url")
    from sqlmodel import SQLModel

    engine = engine_for(url)
    SQLModel.metadata.drop_all(engine)
    SQLModel.metadata.create_all(engine)
    return url


# -- installations ------------------------------------------------------------------------

@pytest.fixture
def home(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.setenv("INTERDICT_DATABASE_URL", database_url)
    return Home(tmp_path / "home")


@pytest.fixture
def installation(home: Home) -> Installation:
    """An installation with issuer court-7 (local key) and the three built-in agencies.

    It is the same object the flows use for this home, so a test sees what they see."""
    from interdict.flows.runtime import installation as flow_installation

    Installation.init(home)
    inst = flow_installation(str(home.root))
    issuers.add(inst, "court-7", name="Court 7", measures=COURT_MEASURES)
    for name in onboarding.BUILTINS:
        onboarding.register_builtin(inst, name)
    return inst


# -- documents ----------------------------------------------------------------------------

BASE_ENTRY: dict[str, Any] = {
    "schema": "interdict/entry/v2",
    "entry_id": "court-7/case-1",
    "revision": 1,
    "op": "impose",
    "issuer": "court-7",
    "subject": {
        "type": "person",
        "names": [{"value": "Zhang Wei", "kind": "primary", "script": "Latn"},
                  {"value": "张伟", "kind": "original_script", "script": "Hans"}],
        "identifiers": [{"scheme": "national-id", "value": "110101198004010011", "country": "CN"},
                        {"scheme": "passport", "value": "E12345678", "country": "CN"}],
        "birth_dates": [{"date": "1980-04-01"}],
        "addresses": [{"city": "Beijing", "country": "CN"}],
    },
    "measures": [{"type": "travel.air"}, {"type": "credit.loan"}],
    "legal_basis": {"instrument": "Civil Procedure Law", "provision": "art. 262",
                    "decision": "(2026) Court 7 No. 1"},
    "reason": "failure to perform an effective judgment",
    "listed_at": "2026-11-01T00:00:00Z",
    "effective_from": "2026-11-01T00:00:00Z",
    "expires_at": "2028-11-01T00:00:00Z",
    "redress": {"authority": "Court 7 review chamber", "contact": "appeals@court-7.example"},
    "decision": {"reference": "(2026) Court 7 No. 1", "authority": "Court 7",
                 "date": "2026-10-20"},
    "assessment": "The debtor has the means to pay and has not performed the judgment for two "
                  "years; a travel and credit restriction is the least intrusive measure left.",
    "notice": {"at": "2026-10-25T00:00:00Z", "channel": "registered_post",
               "covered": ["reasons", "legal_basis", "agencies", "expiry", "redress"]},
}


@pytest.fixture
def make_entry() -> Callable[..., dict[str, Any]]:
    """A factory of valid entries (interdict/entry/v2, through the entry gate); keyword
    arguments replace top-level members (None deletes)."""

    def make(**changes: Any) -> dict[str, Any]:
        document = copy.deepcopy(BASE_ENTRY)
        for key, value in changes.items():
            if value is None:
                document.pop(key, None)
            else:
                document[key] = value
        return document

    return make
