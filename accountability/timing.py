"""Durations on the command line (``1h``, ``120d``) and percentiles of latencies."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from interdict.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``120d``, ``2w``.

    Raises:
        UsageError: ``duration.invalid`` for anything else.
    """
    found = _DURATION.match(text.strip())
    if not found or int(found[1]) == 0:
        raise UsageError(f"{text!r} is not a duration: write a positive number and a unit, "
                         "s, m, h, d or w (e.g. 1h, 120d)", code="duration.invalid")
    return timedelta(seconds=int(found[1]) * _UNITS[found[2]])


def nearest_rank(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile by the nearest-rank method: always one of the observed values, so
    a reported p95 is a latency some lift really had."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered)) - 1, 0)]


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
