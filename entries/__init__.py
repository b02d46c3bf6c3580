"""Sanction entries: admitting published entries, refusing bad ones with a reason, storing both."""

from interdict.entries.admission import (
    Accepted,
    Admission,
    EntryStatus,
    Policy,
    Published,
    Refused,
)
from interdict.entries.reasons import REASONS

__all__ = ["REASONS", "Accepted", "Admission", "EntryStatus", "Policy", "Published", "Refused"]
