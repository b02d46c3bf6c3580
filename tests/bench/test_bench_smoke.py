"""The benchmark keeps working: a small run end to end, its figures present and consistent.

No timing is asserted (PERFORMANCE.md: figures are ratios measured by the benchmark, not tests);
what is checked is that the run did the work it reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import POSTGRES_DEFAULT

ENTRIES = 200


def bench(prefect_api: str, *args: str) -> tuple[dict[str, Any], str]:
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    env.pop("INTERDICT_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "interdict.bench", "--entries", str(ENTRIES),
                           "--floor-entries", str(ENTRIES), "--progress-every", "0", *args],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


@pytest.mark.slow
def test_a_small_benchmark_run_syncs_every_entry_and_reports_every_figure(
        prefect_api: str) -> None:
    out, stderr = bench(prefect_api)
    sync = out["sync"]
    assert sync["accepted"] == ENTRIES
    assert sync["delivered"] == 3 * ENTRIES  # one directive per agency, each with a receipt
    assert set(sync["phases_s"]) == {"ingest", "expire", "route", "deliver", "checkpoint"}
    assert set(sync["without_prefect_phases_s"]) == set(sync["phases_s"])
    assert 0 <= sync["prefect_share"] < 1 and sync["peak_rss_mb"] > 0
    assert sync["idle_sync_s"] > 0 and "sync with nothing new:" in stderr
    assert sync["agencies_cpu_s"] > 0  # the agencies ran in processes of their own
    if out.get("floor"):  # ../shared/bench/floor.py is beside the repository in development
        assert out["floor"]["entries"] == ENTRIES and out["ratio_to_floor"] > 0
        assert out["floor"]["delivery_us_per_entry"] > 0
        assert out["floor"]["best_ratio_here"] > 0 and "at best" in stderr
        # the same work as the floor (no delivery) takes part of the sync's time
        assert out["ratio_to_floor_same_work"] > out["ratio_to_floor"]
        assert sync["floor_work_entries_per_s"] > sync["entries_per_s"]
    # progress lines went to stderr as the phases ended, then the table
    assert "ingest: 200 in" in stderr and "without Prefect: deliver" in stderr
    assert "ratio to floor" in stderr or not out.get("floor")


@pytest.mark.slow
@pytest.mark.postgres
def test_the_workers_benchmark_shares_one_outbox_between_processes(
        prefect_api: str, postgres_url: str) -> None:
    admin = os.environ.get("INTERDICT_TEST_POSTGRES_URL", POSTGRES_DEFAULT)
    out, _ = bench(prefect_api, "--no-floor", "--no-sync", "--postgres", admin,
                   "--workers", "1,2", "--batch", "50")
    runs = out["workers"]["runs"]
    for n in ("1", "2"):
        assert runs[n]["statuses"] == {"delivered": 3 * ENTRIES}
        assert runs[n]["receipts"] == {"applied": 3 * ENTRIES}  # none sent twice
        assert sum(runs[n]["attempted_per_worker"]) == 3 * ENTRIES
        assert len(runs[n]["attempted_per_worker"]) == int(n)
    assert set(out["workers"]["speedup"]) == {"1", "2"}
