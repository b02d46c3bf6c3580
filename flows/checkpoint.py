"""The checkpoint flow: sign the head of the audit log."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from prefect import flow, task

from interdict.auditlog import sign_checkpoint
from interdict.flows.runtime import installation
from interdict.storage import transaction


@dataclass(frozen=True)
class Signed:
    size: int
    root: str  # base64, as in the checkpoint text

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "root": self.root}


def checkpoint_once(home: str) -> Signed:
    inst = installation(home)
    with transaction(inst.db) as session:
        signed = sign_checkpoint(session, inst.log_signer, inst.home.log_origin)
        return Signed(signed.size, base64.b64encode(signed.root).decode())


@task(name="sign-checkpoint")
def sign_head(home: str) -> Signed:
    return checkpoint_once(home)


@flow(name="checkpoint")
def checkpoint(home: str) -> Signed:
    """Sign a checkpoint over the audit log as it stands (nothing new: the latest one)."""
    return sign_head(home)
