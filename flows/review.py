"""The review flow: warn issuers ahead of their entries' review and expiry dates.

``interdict serve`` runs it daily (flows/deploy.py). Each run lists the entries in force due
within the window and warns each entry revision once (``review.due`` in the audit log), so a
daily run warns ahead without repeating itself; the issuer reads its list with
``interdict review due --issuer ID``. Expiry itself needs no flow: every ``sync`` lifts what
expired.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow

from interdict.accountability import review as reviews
from interdict.flows.runtime import installation
from interdict.storage import transaction, utcnow

DEFAULT_WITHIN_DAYS = reviews.DEFAULT_WITHIN.days


@flow(name="review")
def review(home: str, within_days: int = DEFAULT_WITHIN_DAYS) -> dict[str, Any]:
    """Warn (once per entry revision) about entries due within ``within_days``; return the
    report per issuer, as ``interdict review due --json`` prints it."""
    inst = installation(home)
    with transaction(inst.db) as session:
        return reviews.report(session, utcnow(), timedelta(days=within_days))
