"""Signing checkpoints of the audit log (C2SP tlog-checkpoint inside a C2SP signed note).

A checkpoint is signed only over the log as stored, and only when the log has grown, so two
checkpoints of one log are always consistent: the older is a prefix of the newer.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from interdict.auditlog import log, proofs
from interdict.auditlog.note import Checkpoint as CheckpointText
from interdict.auditlog.note import NoteSigner, sign_note
from interdict.storage.models import Checkpoint
from interdict.storage.types import utcnow


def latest(session: Session) -> Checkpoint | None:
    return session.execute(sa.select(Checkpoint).order_by(Checkpoint.size.desc())  # type: ignore[attr-defined]
                           .limit(1)).scalar_one_or_none()


def sign(session: Session, signer: NoteSigner, origin: str) -> Checkpoint:
    """Sign the current head unless the latest checkpoint already covers it."""
    size, root = log.size_and_root(session)
    # Keep the tiles in step with the checkpoints, so proofs never start from raw leaves.
    proofs.extend_tiles(session, size)
    previous = latest(session)
    if previous is not None and previous.size == size:
        return previous
    text = CheckpointText(origin=origin, size=size, root_hash=root).to_text()
    checkpoint = Checkpoint(size=size, root=root, note=sign_note(text, signer), at=utcnow())
    session.add(checkpoint)
    return checkpoint
