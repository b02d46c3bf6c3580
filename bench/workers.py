"""Scale-out on PostgreSQL: N dispatch worker processes sharing one outbox.

Each worker is a separate process running the real ``dispatch`` flow (route, and deliver to
every agency alongside) against the same Prefect server; they share the work only through the
outbox's claims (``FOR UPDATE SKIP LOCKED`` and leases, directives/outbox.py). Ingest runs once
before them: it follows one cursor over the public database, which workers do not partition.

For each worker count the benchmark prepares a fresh database with the same entries, starts
the workers, waits until all of them have imported everything, starts them together and times
until the last one exits. It then checks that every directive was delivered once.

Run as a module, this is one worker: ``python -m interdict.bench.workers HOME GO BATCH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from interdict.bench import progress


def scale(entries: int, batch: int, database_url: str, counts: list[int],
          every: float) -> dict[str, Any]:
    from interdict.bench.sync import _fresh, prepare

    runs: dict[int, dict[str, Any]] = {}
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="interdict-bench-workers-") as tmp:
            root = Path(tmp) / "home"
            url = _fresh(database_url, f"w{n}")
            assert url is not None
            inst = prepare(root, entries, url)
            _ingest(str(root), batch)
            progress.say(f"workers={n}: {entries} entries ingested, starting {n} dispatchers")
            server_cpu = _postgres_cpu_s()
            seconds, reports = _dispatch(str(root), url, n, batch, every)
            runs[n] = _check(inst, seconds, reports)
            # Cores the workers kept busy between "go" and their end: below n, they waited
            # (for locks, or for a core the machine's other work held).
            runs[n]["cores_used"] = round(runs[n]["workers_cpu_s"] / seconds, 2)
            # The PostgreSQL server's processes on this machine share the same cores: with
            # the workers they say whether the machine, not the design, was the limit.
            if server_cpu is not None:
                runs[n]["postgres_cpu_s"] = round((_postgres_cpu_s() or 0) - server_cpu, 3)
                runs[n]["machine_cores_used"] = round(
                    (runs[n]["workers_cpu_s"] + runs[n]["postgres_cpu_s"]) / seconds, 2)
            runs[n]["load_avg_after"] = round(os.getloadavg()[0], 2)
            progress.say(f"workers={n}: {runs[n]['directives']} directives in {seconds:.1f} s "
                         f"({runs[n]['directives_per_s']}/s)")
    base = runs[counts[0]]["seconds"]
    return {"database": "postgresql", "entries": entries, "batch": batch,
            "what": "route + deliver (dispatch flow) per worker process; ingest before, once",
            "runs": {str(n): r for n, r in runs.items()},
            "speedup": {str(n): round(base / r["seconds"], 2) for n, r in runs.items()},
            "target_speedup_2": 1.7}


def _postgres_cpu_s() -> float | None:
    """CPU seconds used so far by this machine's PostgreSQL server processes (Linux /proc;
    None elsewhere): each live process's own, plus what the postmaster's ended children
    (the backends of workers that exited) used."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            if not stat.with_name("comm").read_text().startswith("postgres"):
                continue
        except OSError:  # the process ended while we looked
            continue
        values = fields[1].split()
        total += sum(int(v) for v in values[11:15])  # utime, stime, cutime, cstime
    return total / ticks


def _ingest(home: str, batch: int) -> None:
    from interdict.flows.ingest import ingest_once

    while ingest_once(home, batch).read:
        pass


def _prefect_api() -> str:
    """The Prefect server the workers share: the operator's, or this process's ephemeral one
    (started here if it is not yet), so no worker pays for a server of its own."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return str(PREFECT_API_URL.value())
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return str(server.api_url)


def _dispatch(home: str, url: str, n: int, batch: int,
              every: float) -> tuple[float, list[dict[str, Any]]]:
    go = Path(home).parent / "go"
    env = {**os.environ, "INTERDICT_DATABASE_URL": url, "PREFECT_API_URL": _prefect_api()}
    workers = [subprocess.Popen([sys.executable, "-m", "interdict.bench.workers", home, str(go),
                                 str(batch)], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(n)]
    for worker in workers:  # all have imported Prefect and interdict: start them together
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError(f"worker {worker.pid} did not start")
    reports = []
    with progress.Watch(url, f"workers={n}", every):
        start = time.perf_counter()
        go.touch()
        for worker in workers:
            out, _ = worker.communicate()
            if worker.returncode != 0:
                raise RuntimeError(f"worker {worker.pid} failed with exit code "
                                   f"{worker.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        seconds = time.perf_counter() - start
    return seconds, reports


def _check(inst: Any, seconds: float, reports: list[dict[str, Any]]) -> dict[str, Any]:
    import sqlalchemy as sa

    from interdict.storage import transaction
    from interdict.storage.models import Directive, Receipt

    with transaction(inst.db) as session:
        statuses = Counter(session.execute(sa.select(Directive.status)).scalars())
        receipts = Counter(session.execute(sa.select(Receipt.status)).scalars())
    total = sum(statuses.values())
    return {"seconds": round(seconds, 3), "directives": total,
            "directives_per_s": round(total / seconds, 1), "statuses": dict(statuses),
            "receipts": dict(receipts),
            "attempted_per_worker": [sum(r["attempted"].values()) for r in reports],
            "workers_cpu_s": round(sum(r["cpu_s"] for r in reports), 3)}


def worker(home: str, go: str, batch: int) -> None:
    from interdict import flows  # imports Prefect: before "ready", outside the measurement

    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.02)
    cpu = time.process_time()
    with flows.flow_settings():
        report = flows.dispatch(home, batch)
    from interdict.bench.sync import signature_workers_cpu_s

    # its signature worker's CPU too (keys/offload.py): that work is the worker's own
    print(json.dumps({"attempted": {a: d.attempted for a, d in report.delivered.items()},
                      "cpu_s": time.process_time() - cpu + (signature_workers_cpu_s() or 0)}),
          flush=True)


if __name__ == "__main__":
    from interdict.flows.runtime import apply_defaults

    apply_defaults()
    worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))
