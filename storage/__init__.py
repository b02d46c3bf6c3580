"""Storage: the operational database's tables and how to reach them."""

from interdict.storage.database import (
    create_schema,
    engine_for,
    normalise_url,
    reading,
    transaction,
)
from interdict.storage.types import UTCDateTime, utcnow

__all__ = ["UTCDateTime", "create_schema", "engine_for", "normalise_url", "reading", "transaction",
           "utcnow"]
