"""The sync benchmark: N signed entries for 3 agencies through the real sync, against the floor.

Run it with ``python3 dev.py bench`` (or ``.venv/bin/python -m interdict.bench``). In one run it:

1. runs ``../shared/bench/floor.py`` (the least work any engine must do per entry), and
   ``bench/delivery_floor.py`` (the least work delivery adds to it), which give the best ratio
   to the floor any engine could reach on this machine;
2. publishes N entries, each imposing one measure for each of the three built-in agencies, into
   two fresh homes on SQLite (or PostgreSQL with ``--postgres URL``), streaming in chunks so
   the generator holds no more than one chunk;
3. syncs the first home through Prefect, and the second with the same batch functions called
   without Prefect, which gives Prefect's share;
4. prints the figures as a table on stderr and as JSON on stdout.

While it runs it prints progress lines on stderr (each phase as it ends, and the database's
counts every ``--progress-every`` seconds), so a long run that is stopped still shows how far it
got and how fast.

Peak memory is measured in child processes (``--memory 10000,200000``), one per size, each
reporting its own peak RSS, so the sizes do not share a process.

Scale-out is measured on PostgreSQL with ``--workers 1,2``: the same entries dispatched by one,
then two worker processes sharing the outbox's claims (bench/workers.py).
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

from interdict.bench import progress
from interdict.bench.delivery_floor import best_ratio

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
        progress.say(f"floor: {SHARED_FLOOR} not found, skipped")
        return None
    progress.say(f"floor: {entries} entries, best of 3")
    result: dict[str, Any] = _json_line([str(SHARED_FLOOR), str(entries)])
    progress.say(f"floor: {result['entries_per_s']} entries/s")
    # What delivery adds at least (bench/delivery_floor.py), for the best ratio reachable here.
    added = _json_line(["-m", "interdict.bench.delivery_floor", str(SHARED_FLOOR), str(entries)])
    from interdict.keys.offload import usable_cores

    cores = usable_cores()
    result["delivery_us_per_entry"] = added["us_per_entry"]
    result["best_ratio_here"] = round(best_ratio(result["us_per_entry"], added["us_per_entry"],
                                                 cores), 3)
    progress.say(f"floor: delivery adds {added['us_per_entry']} us per entry at least; "
                 f"best ratio on {cores} cores {result['best_ratio_here']}")
    return result


def _json_line(args: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True)
    value: dict[str, Any] = json.loads(done.stdout)
    return value


#: where the simulated agencies do their work (agencies/process.py): "own" processes, as real
#: agency systems would, or "engine", inside the engine's process
AGENCIES = {"where": "own"}


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
        onboarding.register_builtin(installation, name, {"process": AGENCIES["where"]})
    signer = installation.issuer_signer("court-7")
    from interdict.keys import jws

    for start in range(0, entries, CHUNK):
        tokens = [signer.sign_document(entry(i), jws.TYP_ENTRY)
                  for i in range(start, min(start + CHUNK, entries))]
        installation.public.publish_bulk(tokens)
        if start and start % (10 * CHUNK) == 0:
            progress.say(f"published {start} of {entries}")
    return installation


def sync_with_prefect(home: str, batch: int, every: float) -> tuple[float, dict[str, Any]]:
    from interdict import flows
    from interdict.flows.runtime import installation

    with flows.flow_settings():
        progress.say("starting Prefect (outside the measurement)")
        flows.checkpoint(home)  # start Prefect's server outside the measurement
        progress.say("sync through Prefect: started")
        with progress.Watch(_url(installation(home)), "sync", every):
            start, cpu = time.perf_counter(), time.process_time()
            report = flows.sync(home, batch)
            seconds = time.perf_counter() - start
            out = {**report.to_json(), "cpu_s": time.process_time() - cpu,
                   "signature_workers_cpu_s": signature_workers_cpu_s(),
                   "agencies_cpu_s": agencies_cpu_s()}
        progress.say(f"sync through Prefect: {seconds:.1f} s, phases {out['seconds']}")
        # What a scheduled sync costs when nothing was published since (target <= 1 s once
        # Prefect is up): best of three, as `interdict serve` runs it.
        out["idle_sync_s"] = min(_timed_sync(flows, home, batch) for _ in range(3))
        progress.say(f"sync with nothing new: {out['idle_sync_s']:.2f} s")
    return seconds, out


def agencies_cpu_s() -> float | None:
    """CPU seconds used so far by this process's simulated agencies in processes of their own
    (they start with the first delivery and live on); None where there is none. The agencies
    share the engine's cores here, unlike real ones."""
    return _children_cpu_s(b"interdict.agencies.process")


def signature_workers_cpu_s() -> float | None:
    """CPU seconds used so far by the engine's signature workers (keys/offload.py,
    started by multiprocessing's spawn, living on until the process ends): interdict's own
    work done outside its process."""
    return _children_cpu_s(b"spawn_main")


def _children_cpu_s(marker: bytes) -> float | None:
    """CPU seconds of this process's children whose command line holds ``marker``, read from
    /proc; None where there is none."""
    me, total = str(os.getpid()), 0
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            if marker not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # it ended meanwhile
            continue
        if fields[1] == me:  # ppid; utime and stime are fields 14 and 15 of proc(5)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK") if total else None


def _timed_sync(flows: Any, home: str, batch: int) -> float:
    start = time.perf_counter()
    report = flows.sync(home, batch)
    if report.ingested.read:
        raise RuntimeError("the idle sync found new entries: the benchmark's home changed")
    return time.perf_counter() - start


def sync_without_prefect(home: str, batch: int) -> tuple[float, dict[str, float]]:
    """The same batch functions the flow's tasks call, in the same order, without Prefect."""
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from interdict.flows import handover
    from interdict.flows.checkpoint import checkpoint_once
    from interdict.flows.dispatch import deliver_once, expire_once, plan_once
    from interdict.flows.ingest import ingest_once
    from interdict.flows.runtime import installation
    from interdict.flows.sync import timed

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    progress.say("sync without Prefect: started")
    with timed(seconds, "ingest"):
        while ingest_once(home, batch).read:
            pass
    progress.say(f"without Prefect: ingest {seconds['ingest']:.1f} s")
    with timed(seconds, "expire"):
        while expire_once(home, batch).causes:
            pass
    agencies = installation(home).agency_ids()
    with ThreadPoolExecutor(max(len(agencies), 1)) as pool:
        with handover.routing(home) as routing:  # delivery follows routing, as in the flow
            deliveries = [pool.submit(handover.follow, routing, partial(deliver_once, home, a))
                          for a in agencies]
            with timed(seconds, "route"):
                while plan_once(home, batch).causes:
                    pass
        progress.say(f"without Prefect: route {seconds['route']:.1f} s")
        with timed(seconds, "deliver"):
            for delivery in deliveries:
                delivery.result()
    progress.say(f"without Prefect: deliver {seconds['deliver']:.1f} s")
    with timed(seconds, "checkpoint"):
        checkpoint_once(home)
    return time.perf_counter() - start, seconds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _url(installation: Any) -> str:
    return str(installation.db.url.render_as_string(hide_password=False))


def run(entries: int, batch: int, database_url: str | None, plain: bool,
        every: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="interdict-bench-") as tmp:
        t = time.perf_counter()
        progress.say(f"publishing {entries} signed entries")
        prepare(Path(tmp) / "prefect", entries, _fresh(database_url, "a"))
        generated = time.perf_counter() - t
        progress.say(f"published {entries} in {generated:.1f} s")
        seconds, report = sync_with_prefect(str(Path(tmp) / "prefect"), batch, every)
        result: dict[str, Any] = {
            "entries": entries, "batch": batch, "database": "postgresql" if database_url
            else "sqlite", "generate_s": round(generated, 2), "sync_s": round(seconds, 3),
            "entries_per_s": round(entries / seconds, 1),
            "directives_per_s": round(sum(a["issued"] for a in report["directives"].values())
                                      / seconds, 1),
            "phases_s": report["seconds"],
            # The floor's own work (verify, validate, sign, log, store) is ingest and routing;
            # delivery, receipts and their checks come on top (docs/performance.md). Delivery
            # runs alongside routing, so the route phase holds some of its work too.
            "floor_work_entries_per_s": round(entries / _floor_work_s(report["seconds"]), 1),
            "accepted": report["accepted"],
            "delivered": sum(a["delivered"] for a in report["directives"].values()),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "idle_sync_s": round(report["idle_sync_s"], 3),
            # CPU seconds of this process (all threads; not Prefect's server process): on a
            # loaded machine they compare runs better than wall time does.
            "cpu_s": round(report["cpu_s"], 3),
            "signature_workers_cpu_s": _rounded(report["signature_workers_cpu_s"]),
            "agencies_cpu_s": _rounded(report["agencies_cpu_s"])}
        if plain:
            prepare(Path(tmp) / "plain", entries, _fresh(database_url, "b"))
            cpu = time.process_time()
            plain_s, plain_phases = sync_without_prefect(str(Path(tmp) / "plain"), batch)
            result["without_prefect_cpu_s"] = round(time.process_time() - cpu, 3)
            result["without_prefect_s"] = round(plain_s, 3)
            result["without_prefect_phases_s"] = {k: round(v, 3) for k, v in plain_phases.items()}
            result["prefect_share"] = round(max(seconds - plain_s, 0.0) / seconds, 3)
    return result


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _floor_work_s(phases: dict[str, float]) -> float:
    return sum(phases.get(p, 0.0) for p in ("ingest", "expire", "route")) or 1e-9


_CREATED: list[str] = []


def drop_created() -> None:
    """Drop the PostgreSQL databases this run created (FORCE: pooled engines still hold them)."""
    import sqlalchemy as sa

    while _CREATED:
        url = sa.make_url(_CREATED.pop())
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        admin.dispose()


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
    admin.dispose()
    url: str = admin.url.set(database=name).render_as_string(hide_password=False)
    _CREATED.append(url)
    return url


def memory(sizes: list[int], batch: int, every: float) -> dict[str, Any]:
    peaks = {}
    for size in sizes:
        progress.say(f"memory: a child process syncs {size} entries")
        done = subprocess.run([sys.executable, "-m", "interdict.bench", "--entries", str(size),
                               "--batch", str(batch), "--no-floor", "--no-plain", "--quiet",
                               "--agencies", AGENCIES["where"],
                               "--progress-every", str(every)],
                              check=True, stdout=subprocess.PIPE, text=True)
        peaks[size] = json.loads(done.stdout)["sync"]["peak_rss_mb"]
        progress.say(f"memory: {size} entries, peak RSS {peaks[size]} MB")
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
    parser.add_argument("--no-sync", action="store_true",
                        help="skip the main sync run (to measure only --workers or --memory)")
    parser.add_argument("--workers", metavar="N1,N2",
                        help="with --postgres: dispatch with N1, then N2 worker processes, "
                             "e.g. 1,2, and report the speed-up against the first")
    parser.add_argument("--agencies", choices=("own", "engine"), default="own",
                        help="where the three simulated agencies verify directives and sign "
                             "receipts: in processes of their own (default, as real agencies "
                             "would) or inside the engine's process")
    parser.add_argument("--progress-every", type=float, default=10.0, metavar="SECONDS",
                        help="print the database's counts this often while syncing (0: never)")
    parser.add_argument("--quiet", action="store_true", help="no table (the JSON is on stdout)")
    args = parser.parse_args(argv)
    if args.workers and not args.postgres:
        parser.error("--workers needs --postgres URL (SQLite serialises writers)")
    from interdict.flows.runtime import apply_defaults

    apply_defaults()
    os.environ.setdefault("INTERDICT_KEY_KDF_ROUNDS", "1")
    AGENCIES["where"] = args.agencies
    progress.report_phases()
    # The load average says how much the run shared the machine: compare only ratios taken
    # in one run, and say the load when recording figures.
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                       "load_avg_at_start": round(os.getloadavg()[0], 2)},
                           "date": time.strftime("%Y-%m-%d %H:%M"), "agencies": args.agencies}
    if not args.no_floor:
        out["floor"] = floor(args.floor_entries)
    try:
        if not args.no_sync:
            out["sync"] = run(args.entries, args.batch, args.postgres, not args.no_plain,
                              args.progress_every)
        if args.workers:
            from interdict.bench.workers import scale

            out["workers"] = scale(args.entries, args.batch, args.postgres,
                                   [int(n) for n in args.workers.split(",")],
                                   args.progress_every)
    finally:
        drop_created()
    if out.get("floor") and out.get("sync"):
        out["ratio_to_floor"] = round(out["sync"]["entries_per_s"]
                                      / out["floor"]["entries_per_s"], 3)
        out["ratio_to_floor_same_work"] = round(out["sync"]["floor_work_entries_per_s"]
                                                / out["floor"]["entries_per_s"], 3)
    if args.memory:
        out["memory"] = memory([int(n) for n in args.memory.split(",")], args.batch,
                               args.progress_every)
    out["machine"]["load_avg_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=2))
    if not args.quiet:
        _table(out)
    return 0


def _table(out: dict[str, Any]) -> None:
    sync = out.get("sync", {})
    rows: list[tuple[str, Any]] = []
    if sync:
        rows += [("entries", sync["entries"]), ("sync seconds", sync["sync_s"]),
                 ("entries/s", sync["entries_per_s"]),
                 ("directives/s", sync["directives_per_s"]), ("peak RSS MB", sync["peak_rss_mb"])]
        rows += [(f"  {phase} s", v) for phase, v in sync["phases_s"].items()]
        rows.append(("CPU s (process)", sync["cpu_s"]))
        if sync.get("signature_workers_cpu_s"):
            rows.append(("CPU s (signing)", f"{sync['signature_workers_cpu_s']} (the engine's "
                                            "signature workers)"))
        if sync.get("agencies_cpu_s"):
            rows.append(("CPU s (agencies)", sync["agencies_cpu_s"]))
        rows.append(("idle sync s", f"{sync['idle_sync_s']} (nothing new; target <= 1 s)"))
    if "prefect_share" in sync:
        rows.append(("Prefect's share", f"{sync['prefect_share']:.1%} (target <= 10%)"))
    if out.get("floor"):
        rows.append(("floor entries/s", out["floor"]["entries_per_s"]))
        rows.append(("  + delivery", f"{out['floor']['delivery_us_per_entry']} us/entry at "
                                     "least (bench/delivery_floor.py)"))
    if "ratio_to_floor" in out:
        rows.append(("ratio to floor", f"{out['ratio_to_floor']:.3f} (target >= 0.5; at best "
                                       f"{out['floor']['best_ratio_here']} here)"))
        rows.append(("  same work", f"{out['ratio_to_floor_same_work']:.3f} (the ingest and "
                                    "route phases; delivery runs alongside routing)"))
    for n, speedup in out.get("workers", {}).get("speedup", {}).items():
        run = out["workers"]["runs"][n]
        rows.append((f"{n} worker(s)", f"{run['directives_per_s']} directives/s, "
                                       f"{speedup}x (target 2: >= 1.7x)"))
    if "memory" in out:
        rows.append(("RSS growth", f"{out['memory']['growth']:.1%} (target <= 20%)"))
    for name, value in rows:
        print(f"{name:<18}{value}", file=sys.stderr)
