"""Running interdict on a schedule: the deployments behind ``interdict serve``.

``sync`` runs every few minutes, ``reconcile`` less often, and ``review`` (the warnings ahead
of review and expiry dates) and ``erase`` daily, each with a deployment concurrency limit of 1
that cancels a run scheduled while the previous one still runs: two syncs never overlap (on
SQLite they would only queue on the write lock, and the later one
would find nothing left to do). This is the only Prefect concurrency limit interdict uses: it
costs one check per flow run, not per task (PERFORMANCE.md); delivery throttles itself.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import EntrypointType, RunnerDeployment

from interdict.flows.erase import erase
from interdict.flows.reconcile import reconcile
from interdict.flows.review import review
from interdict.flows.sync import sync

ONE_AT_A_TIME = ConcurrencyLimitConfig(limit=1,
                                       collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)


DAILY = 86400.0


def deployments(home: str, *, name: str = "interdict", sync_every: float = 300,
                reconcile_every: float = 3600, review_every: float = DAILY,
                erase_every: float = DAILY) -> list[RunnerDeployment]:
    """``sync/<name>``, ``reconcile/<name>``, ``review/<name>`` and ``erase/<name>`` for the
    installation at
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
        review.to_deployment(interval=timedelta(seconds=review_every),
                             description="warn issuers of reviews and expiries due (review.due)",
                             **common),  # type: ignore[arg-type]
        erase.to_deployment(interval=timedelta(seconds=erase_every),
                            description="erase personal data past retention after a lift",
                            **common),  # type: ignore[arg-type]
    ]


def serve(home: str, *, name: str = "interdict", sync_every: float = 300,
          reconcile_every: float = 3600, review_every: float = DAILY,
          erase_every: float = DAILY) -> None:
    """Register the deployments with the Prefect API and run their schedules until stopped."""
    from prefect import serve as prefect_serve

    prefect_serve(*deployments(home, name=name, sync_every=sync_every,
                               reconcile_every=reconcile_every, review_every=review_every,
                               erase_every=erase_every))
