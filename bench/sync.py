"""The sync benchmark: N signed entries for 3 agencies through the real sync, against the floor.

Run it with ``python3 dev.py bench`` (or ``.venv/bin/python -m interdict.bench``). In one run it:

1. runs ``../shared/bench/floor.py`` (the least work any engine must do per entry);
2. publishes N entries, each imposing one measure for each of the three built-in agencies, into
   two fresh homes on SQLite (or PostgreSQL with ``--postgres URL``), streaming in chunks so
   the generator holds no more than one chunk;
3. syncs the first home through Prefect, and the second with the same batch functions called
   without Prefect, which gives Prefect's share;
4. prints the figures as a table on stderr and as JSON on stdout.

Peak memory is measured in child processes (``--memory 10000,200000``), one per size, each
reporting its own peak RSS, so the sizes do not share a process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHARED_FLOOR = Path(__file__).resolve().parents[2] / "shared" / "bench" / "floor.py"
MEASURES = [{"type": "travel.air"}, {"type": "credit.loan"}, {"type": "permit.business"}]
CHUNK = 2000


def entry(i: int) -> dict[str, Any]:
    return {
        "schema": "interdict/entry/v2", "entry_id": f"court-7/{i:08d}", "revision": 1,
        "op": "impose", "issuer": "court-7",
        "subject": {"type": "person",
                    "names": [{"value": "Zhang Wei", "kind": "primary", "script": "Latn"},
                              {"value": "张伟", "kind": "original_script", "script": "Hans"}],
                    "birth_dates": [{"date": "1980-04-01"}],
                    "identifiers": [{"scheme": "national-id", "value": f"{i:018d}"}]},
        "measures": MEASURES,
        "legal_basis": {"instrument": "Civil Procedure Law", "provision": "art. 262",
                        "decision": f"(2026) Case {i}"},
        "reason": "failure to perform an effective judgment",
        "listed_at": "2026-11-01T00:00:00Z", "effective_from": "2026-11-01T00:00:00Z",
        "expires_at": "2028-11-01T00:00:00Z",
        "redress": {"authority": "court-7", "contact": "appeals@court-7.example"},
        "decision": {"reference": f"(2026) Case {i}", "authority": "Court 7",
                     "date": "2026-10-20"},
        "assessment": "The debtor has the means to pay and has not performed the judgment; "
                      "the restriction is the least intrusive measure left.",
        "notice": {"at": "2026-10-25T00:00:00Z", "channel": "registered_post",
                   "covered": ["reasons", "legal_basis", "agencies", "expiry", "redress"]},
    }


def floor(entries: int) -> dict[str, Any] | None:
    if not SHARED_FLOOR.exists():
        return None
    done = subprocess.run([sys.executable, str(SHARED_FLOOR), str(entries)], check=True,
                          capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def prepare(root: Path, entries: int, database_url: str | None) -> Any:
    """A home with issuer court-7 and the built-in agencies, and N published entries."""
    from interdict import issuers
    from interdict.agencies import onboarding
    from interdict.home import Home
    from interdict.installation import Installation

    if database_url:
        os.environ["INTERDICT_DATABASE_URL"] = database_url
    installation = Installation.init(Home(root))
    issuers.add(installation, "court-7", name="Court 7",
                measures=[m["type"] for m in MEASURES])
    for name in onboarding.BUILTINS:
        onboarding.register_builtin(installation, name)
    signer = installation.issuer_signer("court-7")
    from interdict.keys import jws

    for start in range(0, entries, CHUNK):
        tokens = [signer.sign_document(entry(i), jws.TYP_ENTRY)
                  for i in range(start, min(start + CHUNK, entries))]
        installation.public.publish_bulk(tokens)
    return installation


def sync_with_prefect(home: str, batch: int) -> tuple[float, dict[str, Any]]:
    from interdict import flows

    with flows.flow_settings():
        flows.checkpoint(home)  # start Prefect's server outside the measurement
        start = time.perf_counter()
        report = flows.sync(home, batch)
    return time.perf_counter() - start, report.to_json()


def sync_without_prefect(home: str, batch: int) -> tuple[float, dict[str, float]]:
    """The same batch functions the flow's tasks call, in the same order, without Prefect."""
    from concurrent.futures import ThreadPoolExecutor

    from interdict.flows.checkpoint import checkpoint_once
    from interdict.flows.dispatch import deliver_once, expire_once, plan_once
    from interdict.flows.ingest import ingest_once
    from interdict.flows.runtime import installation
    from interdict.flows.sync import timed

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with timed(seconds, "ingest"):
        while ingest_once(home, batch).read:
            pass
    with timed(seconds, "expire"):
        while expire_once(home, batch).causes:
            pass
    with timed(seconds, "route"):
        while plan_once(home, batch).causes:
            pass
    with timed(seconds, "deliver"):
        agencies = installation(home).agency_ids()
        with ThreadPoolExecutor(max(len(agencies), 1)) as pool:
            list(pool.map(lambda a: deliver_once(home, a), agencies))
    with timed(seconds, "checkpoint"):
        checkpoint_once(home)
    return time.perf_counter() - start, seconds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(entries: int, batch: int, database_url: str | None, plain: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="interdict-bench-") as tmp:
        os.environ.setdefault("INTERDICT_KEY_KDF_ROUNDS", "1")
        t = time.perf_counter()
        prepare(Path(tmp) / "prefect", entries, _fresh(database_url, "a"))
        generated = time.perf_counter() - t
        seconds, report = sync_with_prefect(str(Path(tmp) / "prefect"), batch)
        result: dict[str, Any] = {
            "entries": entries, "batch": batch, "database": "postgresql" if database_url
            else "sqlite", "generate_s": round(generated, 2), "sync_s": round(seconds, 3),
            "entries_per_s": round(entries / seconds, 1),
            "directives_per_s": round(sum(a["issued"] for a in report["directives"].values())
                                      / seconds, 1),
            "phases_s": report["seconds"], "accepted": report["accepted"],
            "delivered": sum(a["delivered"] for a in report["directives"].values()),
            "peak_rss_mb": round(peak_rss_mb(), 1)}
        if plain:
            prepare(Path(tmp) / "plain", entries, _fresh(database_url, "b"))
            plain_s, plain_phases = sync_without_prefect(str(Path(tmp) / "plain"), batch)
            result["without_prefect_s"] = round(plain_s, 3)
            result["without_prefect_phases_s"] = {k: round(v, 3) for k, v in plain_phases.items()}
            result["prefect_share"] = round(max(seconds - plain_s, 0.0) / seconds, 3)
    return result


def _fresh(database_url: str | None, suffix: str) -> str | None:
    """A new PostgreSQL database per home, so the two runs do not share tables."""
    if not database_url:
        os.environ.pop("INTERDICT_DATABASE_URL", None)
        return None
    import secrets

    import sqlalchemy as sa

    name = f"interdict_bench_{suffix}_{secrets.token_hex(3)}"
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return admin.url.set(database=name).render_as_string(hide_password=False)


def memory(sizes: list[int], batch: int) -> dict[str, Any]:
    peaks = {}
    for size in sizes:
        done = subprocess.run([sys.executable, "-m", "interdict.bench", "--entries", str(size),
                               "--batch", str(batch), "--no-floor", "--no-plain", "--quiet"],
                              check=True, capture_output=True, text=True)
        peaks[size] = json.loads(done.stdout)["sync"]["peak_rss_mb"]
    first, last = peaks[sizes[0]], peaks[sizes[-1]]
    return {"peak_rss_mb": peaks, "growth": round(last / first - 1, 3), "target_growth": 0.2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interdict.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres", metavar="URL", help="run on PostgreSQL (admin URL)")
    parser.add_argument("--memory", metavar="N1,N2", help="peak RSS at two sizes, e.g. "
                                                          "10000,200000")
    parser.add_argument("--floor-entries", type=int, default=20_000)
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-plain", action="store_true", help="skip the run without Prefect")
    parser.add_argument("--quiet", action="store_true", help="JSON only")
    args = parser.parse_args(argv)
    from interdict.flows.runtime import apply_defaults

    apply_defaults()
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                           "date": time.strftime("%Y-%m-%d")}
    if not args.no_floor:
        out["floor"] = floor(args.floor_entries)
    out["sync"] = run(args.entries, args.batch, args.postgres, not args.no_plain)
    if out.get("floor"):
        out["ratio_to_floor"] = round(out["sync"]["entries_per_s"]
                                      / out["floor"]["entries_per_s"], 3)
    if args.memory:
        out["memory"] = memory([int(n) for n in args.memory.split(",")], args.batch)
    print(json.dumps(out, indent=2))
    if not args.quiet:
        _table(out)
    return 0


def _table(out: dict[str, Any]) -> None:
    sync = out["sync"]
    rows = [("entries", sync["entries"]), ("sync seconds", sync["sync_s"]),
            ("entries/s", sync["entries_per_s"]), ("directives/s", sync["directives_per_s"]),
            ("peak RSS MB", sync["peak_rss_mb"])]
    rows += [(f"  {phase} s", v) for phase, v in sync["phases_s"].items()]
    if "prefect_share" in sync:
        rows.append(("Prefect's share", f"{sync['prefect_share']:.1%} (target <= 10%)"))
    if out.get("floor"):
        rows.append(("floor entries/s", out["floor"]["entries_per_s"]))
        rows.append(("ratio to floor", f"{out['ratio_to_floor']:.3f} (target >= 0.5)"))
    if "memory" in out:
        rows.append(("RSS growth", f"{out['memory']['growth']:.1%} (target <= 20%)"))
    for name, value in rows:
        print(f"{name:<18}{value}", file=sys.stderr)
