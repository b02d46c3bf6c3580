"""Running interdict on a schedule: the deployments behind ``interdict serve``.

``sync`` runs every few minutes, ``reconcile`` less often and ``erase`` daily, each with a
deployment concurrency limit of 1 that cancels a run scheduled while the previous one still
runs: two syncs never overlap (on SQLite they would only queue on the write lock, and the later one
would find nothing left to do). This is the only Prefect concurrency limit interdict uses: it
costs one check per flow run, not per task (PERFORMANCE.md); delivery throttles itself.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment

from interdict.flows.erase import erase
from interdict.flows.reconcile import reconcile
from interdict.flows.sync import sync

ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1,
                                       collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


def deployments(home: str, *, name: str = "interdict", sync_every: float = 300,
                reconcile_every: float = 3600,
                erase_every: float = 86400) -> list[RunnerDeployment]:
    """``sync/<name>``, ``reconcile/<name>`` and ``erase/<name>`` for the installation at
    ``home``."""
    common = {"name": name, "concurrency_limit": ONE_AT_A_TIME, "parameters": {"home": home},
              "entrypoint_type": EntrypointType.MODULE_PATH, "tags": ["interdict"]}
    return [
        sync.to_deployment(interval=timedelta(seconds=sync_every),
                           description="ingest, lift expired, route, deliver, checkpoint",
                           **common),  # type: ignore[arg-type]
        reconcile.to_deployment(interval=timedelta(seconds=reconcile_every),
                                description="compare agencies' holdings, redeliver drift",
                                **common),  # type: ignore[arg-type]
        erase.to_deployment(interval=timedelta(seconds=erase_every),
                            description="erase personal data past retention after a lift",
                            **common),  # type: ignore[arg-type]
    ]


def serve(home: str, *, name: str = "interdict", sync_every: float = 300,
          reconcile_every: float = 3600, erase_every: float = 86400) -> None:
    """Register the deployments with the Prefect API and run their schedules until stopped."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(home, name=name, sync_every=sync_every,
                               reconcile_every=reconcile_every, erase_every=erase_every))
