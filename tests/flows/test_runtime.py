"""The per-process runtime the flows' tasks share (flows/runtime.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from interdict.home import Home
from interdict.installation import Installation


def test_the_first_installation_a_process_opens_settles_the_collector(home: Home) -> None:
    """In a fresh process (this one's collector is the test runner's): what imports made is
    frozen out of the collector's walks, and the young generation is collected less often."""
    Installation.init(home)
    script = (
        "import gc, json, sys\n"
        "from interdict.flows import runtime\n"
        "before = (gc.get_freeze_count(), gc.get_threshold()[0])\n"
        "runtime.installation(sys.argv[1])\n"
        "after = (gc.get_freeze_count(), gc.get_threshold()[0])\n"
        "runtime.settle_gc()\n"
        "again = gc.get_freeze_count()\n"
        "print(json.dumps([before, after, again, runtime.GC_GEN0_THRESHOLD]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(home.root)], check=True,
                          capture_output=True, text=True)
    before, after, again, wanted = json.loads(done.stdout)
    assert before[0] == 0 and before[1] != wanted
    assert after[0] > 100_000  # Prefect, SQLAlchemy and interdict's modules
    assert after[1] == wanted
    assert again == after[0]  # once per process: later batches' objects are never frozen
