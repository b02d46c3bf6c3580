"""The least work delivery adds per entry, beside the shared floor, and the best ratio it allows.

``../shared/bench/floor.py`` stops when the directives are signed and stored. A sync goes on:
each of the three agencies checks its directive's signature and signs a receipt, and the engine
checks that receipt's signature before it records it. This does that least extra work with the
floor's own libraries and helpers (PyNaCl, orjson, its JWS and Merkle code), on one core, best
of three: per directive, the agency parses and verifies the directive, stores one row and signs
a receipt, and the engine parses and verifies the receipt, stores it, marks the directive
delivered and hashes one audit event; rows are written in batches of 1,000 entries, as the
floor writes its own. The outbox rows it marks are written before the clock starts (the floor
stored them). It is a lower bound: no schema check of directives or receipts, no audit row
stored, one audit event per directive where interdict logs the attempt and the answer.

From the two per-entry times measured in the same run, the best ratio to the floor any engine
can reach on this machine, with the agencies on the same cores and the work spread perfectly
over all of them, is ``cores x floor / (floor + delivery)`` (docs/performance.md). It can pass
1: the floor runs on one core.

Usage: python -m interdict.bench.delivery_floor FLOOR_PY [N]   prints one JSON line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import nacl.signing
import orjson

AT = "2026-11-27T00:00:00Z"
BATCH = 1000  # entries per commit, as in the floor


def load_floor(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("shared_floor", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def directives(floor: ModuleType, engine: Any, n: int) -> list[tuple[str, bytes]]:
    """What the floor leaves behind: one signed directive per agency per entry."""
    out = []
    for i in range(n):
        doc = floor.entry(i)
        for agency in floor.AGENCIES:
            body = orjson.dumps({"directive_id": f"d-{i:08d}-{agency}", "agency": agency,
                                 "action": "impose", "entry_id": doc["entry_id"],
                                 "subject": doc["subject"], "measures": doc["measures"]},
                                option=orjson.OPT_SORT_KEYS)
            out.append((agency, floor.jws(engine, "engine", body)))
    return out


def _open(floor: ModuleType, token: bytes, key: Any) -> dict[str, Any]:
    signing_input, _, signature = token.rpartition(b".")
    header, _, payload = signing_input.partition(b".")
    if orjson.loads(floor.unb64u(header)).get("alg") != "Ed25519":
        raise ValueError("alg")
    key.verify(signing_input, floor.unb64u(signature))
    document: dict[str, Any] = orjson.loads(floor.unb64u(payload))
    return document


def outbox(floor: ModuleType, sent: list[tuple[str, bytes]], db: str) -> None:
    """The database as the floor leaves it: the directives stored, pending."""
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE TABLE received (directive_id TEXT PRIMARY KEY, at TEXT)")
    c.execute("CREATE TABLE directive (directive_id TEXT PRIMARY KEY, status TEXT)")
    c.execute("CREATE TABLE receipt (id INTEGER PRIMARY KEY, directive_id TEXT, jws BLOB)")
    per_entry = len(floor.AGENCIES)
    c.executemany("INSERT INTO directive VALUES (?, 'pending')",
                  [(f"d-{i // per_entry:08d}-{agency}",) for i, (agency, _) in enumerate(sent)])
    c.commit()
    c.close()


def run(floor: ModuleType, sent: list[tuple[str, bytes]], engine_key: Any,
        agency_keys: dict[str, Any], db: str) -> None:
    """Deliver ``sent`` into the outbox ``db`` (made by ``outbox``)."""
    c = sqlite3.connect(db)
    log = floor.Merkle()
    per_commit = BATCH * len(floor.AGENCIES)
    for start in range(0, len(sent), per_commit):
        received, stored, done = [], [], []
        for agency, token in sent[start:start + per_commit]:
            # the agency: check the directive, answer with a signed receipt
            directive = _open(floor, token, engine_key.verify_key)
            did = directive["directive_id"]
            received.append((did, AT))
            body = orjson.dumps({"directive_id": did, "status": "applied", "at": AT},
                                option=orjson.OPT_SORT_KEYS)
            receipt = floor.jws(agency_keys[agency], agency, body)
            # the engine: check the receipt, record it and the directive's new state, log it
            answer = _open(floor, receipt, agency_keys[agency].verify_key)
            stored.append((answer["directive_id"], receipt))
            done.append((answer["directive_id"],))
            log.append(orjson.dumps({"action": "receipt.recorded", "directive_id": did},
                                    option=orjson.OPT_SORT_KEYS))
        c.executemany("INSERT INTO received VALUES (?, ?)", received)
        c.executemany("INSERT INTO receipt (directive_id, jws) VALUES (?, ?)", stored)
        c.executemany("UPDATE directive SET status = 'delivered' WHERE directive_id = ?", done)
        c.commit()
    c.close()


def measure(floor_path: Path, n: int) -> dict[str, Any]:
    floor = load_floor(floor_path)
    engine = nacl.signing.SigningKey.generate()
    agency_keys = {a: nacl.signing.SigningKey.generate() for a in floor.AGENCIES}
    sent = directives(floor, engine, n)
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "delivery.db")
            outbox(floor, sent, db)
            start = time.perf_counter()
            run(floor, sent, engine, agency_keys, db)
            best = min(best, time.perf_counter() - start)
    return {"delivery_floor": "per-entry minimum delivery adds, 1 core", "entries": n,
            "agencies": len(floor.AGENCIES), "seconds": round(best, 4),
            "us_per_entry": round(best / n * 1e6, 1)}


def best_ratio(floor_us: float, delivery_us: float, cores: int) -> float:
    """The highest sync-to-floor ratio reachable: all the work, spread over every core."""
    return cores * floor_us / (floor_us + delivery_us)


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 5000
    print(json.dumps(measure(Path(argv[0]), n)))


if __name__ == "__main__":
    main(sys.argv[1:])
