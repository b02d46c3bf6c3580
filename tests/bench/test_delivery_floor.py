"""The delivery floor does the work it claims, with the shared floor's own helpers."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import ModuleType

import nacl.exceptions
import nacl.signing
import pytest

from interdict.bench import delivery_floor
from interdict.bench.sync import SHARED_FLOOR


@pytest.fixture(scope="module")
def floor() -> ModuleType:
    if not SHARED_FLOOR.is_file():
        pytest.skip(f"the shared floor is not here: no {SHARED_FLOOR}")
    return delivery_floor.load_floor(SHARED_FLOOR)


def keys(floor: ModuleType) -> tuple[nacl.signing.SigningKey, dict[str, nacl.signing.SigningKey]]:
    return (nacl.signing.SigningKey.generate(),
            {a: nacl.signing.SigningKey.generate() for a in floor.AGENCIES})


def test_every_directive_is_checked_answered_and_recorded(floor: ModuleType,
                                                          tmp_path: Path) -> None:
    engine, agencies = keys(floor)
    sent = delivery_floor.directives(floor, engine, 1500)  # two commits, the second partial
    db = str(tmp_path / "d.db")
    delivery_floor.outbox(floor, sent, db)
    delivery_floor.run(floor, sent, engine, agencies, db)
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT count(*) FROM received").fetchone() == (4500,)
        assert c.execute("SELECT count(*) FROM receipt").fetchone() == (4500,)
        assert c.execute("SELECT DISTINCT status FROM directive").fetchall() == [("delivered",)]
        token = c.execute("SELECT jws FROM receipt WHERE directive_id = 'd-00001499-permits'"
                          ).fetchone()[0]
    assert delivery_floor._open(floor, token, agencies["permits"].verify_key)["status"] == \
        "applied"


def test_a_directive_signed_by_another_key_is_refused(floor: ModuleType,
                                                       tmp_path: Path) -> None:
    engine, agencies = keys(floor)
    forged = delivery_floor.directives(floor, nacl.signing.SigningKey.generate(), 1)
    db = str(tmp_path / "d.db")
    delivery_floor.outbox(floor, forged, db)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        delivery_floor.run(floor, forged, engine, agencies, db)


@pytest.mark.parametrize(("floor_us", "delivery_us", "cores", "best"), [
    (100.0, 100.0, 1, 0.5), (100.0, 300.0, 2, 0.5), (100.0, 100.0, 2, 1.0),
    (100.0, 0.0, 4, 4.0)])
def test_the_best_ratio_spreads_all_the_work_over_every_core(
        floor_us: float, delivery_us: float, cores: int, best: float) -> None:
    assert delivery_floor.best_ratio(floor_us, delivery_us, cores) == best
