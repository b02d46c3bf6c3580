"""The audit log: an RFC 6962 Merkle tree of events with signed C2SP checkpoints."""

from interdict.auditlog.checkpoints import latest as latest_checkpoint
from interdict.auditlog.checkpoints import sign as sign_checkpoint
from interdict.auditlog.log import append, event, operator, size_and_root

__all__ = ["append", "event", "latest_checkpoint", "operator", "sign_checkpoint", "size_and_root"]
