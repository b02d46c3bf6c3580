"""Per-entry work is batched: the number of Prefect task runs does not grow with the entries."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from interdict import flows, issuers
from interdict.installation import Installation

pytestmark = pytest.mark.usefixtures("prefect_api")
GENERATED_SUFFIX = re.compile(r"-[0-9a-f]{3}$")  # Prefect's default task run names: name-abc


def task_runs(flow_run_id: UUID) -> Counter[str]:
    """Task runs of one flow run by task, as the Prefect server recorded them. The server
    records in batches, so poll until the last task (the checkpoint) is there and the count
    is stable."""
    seen: Counter[str] = Counter()
    with get_client(sync_client=True) as client:
        for _ in range(60):
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[flow_run_id])))
            current = Counter(GENERATED_SUFFIX.sub("", run.name) for run in runs)
            if current["sign-checkpoint"] and current == seen:
                return current
            seen = current
            time.sleep(0.5)
    return seen


def sync_recording_tasks(installation: Installation, documents: list[dict[str, Any]]
                         ) -> Counter[str]:
    installation.public.publish(issuers.sign(installation, "court-7", documents))
    state: Any = flows.sync(str(installation.home.root), return_state=True)
    assert state.is_completed()
    return task_runs(state.state_details.flow_run_id)


def test_task_runs_do_not_grow_with_entries(installation: Installation,
                                            make_entry: Callable[..., dict[str, Any]]) -> None:
    small = sync_recording_tasks(installation, [make_entry(entry_id=f"court-7/{i}")
                                                for i in range(3)])
    large = sync_recording_tasks(installation, [make_entry(entry_id=f"court-7/{i}")
                                                for i in range(3, 123)])
    assert small == large
    assert large["ingest-batch"] == 2 and large["deliver-travel"] == 1
    assert sum(large.values()) < 15
