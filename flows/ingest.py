"""The ingest flow: new rows of the public database, admitted or quarantined, batch by batch."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from prefect import flow, task

from interdict import progress
from interdict.accountability import policy
from interdict.entries import store
from interdict.entries.admission import Accepted, Admission, Published
from interdict.flows.runtime import installation
from interdict.keys.jwk import unb64u
from interdict.keys.truststore import TrustSnapshot
from interdict.storage import transaction, utcnow

DEFAULT_BATCH = 1000


@dataclass
class Ingested:
    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    position: int = 0

    def add(self, other: Ingested) -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.quarantined += other.quarantined
        self.position = max(self.position, other.position)


def ingest_once(home: str, batch_size: int = DEFAULT_BATCH) -> Ingested:
    """Admit the next batch after the cursor; store outcomes and the cursor in one transaction."""
    inst = installation(home)
    with transaction(inst.db) as session:
        position = store.cursor(session)
        rows = inst.public.read_after(position, batch_size)
        if not rows:
            return Ingested(position=position)
        admission = Admission(TrustSnapshot.load(session),
                              store.known_status(session, _claimed_keys(rows)), utcnow(),
                              policy.admission_policy(session))
        outcomes = [admission.admit(row) for row in rows]
        store.record(session, outcomes, rows[-1].seq)
    accepted = sum(isinstance(o, Accepted) for o in outcomes)
    return Ingested(len(rows), accepted, len(rows) - accepted, rows[-1].seq)


def _claimed_keys(rows: list[Published]) -> set[tuple[str, str]]:
    """The entries a batch claims to touch, read before verification only to prefetch their
    state in one query; admission decides on the verified payload."""
    keys = set()
    for row in rows:
        try:
            claimed = orjson.loads(unb64u(row.jws.split(".")[1]))
            keys.add((str(claimed["issuer"]), str(claimed["entry_id"])))
        except Exception:
            continue
    return keys


@task(name="ingest-batch")
def ingest_batch(home: str, batch_size: int = DEFAULT_BATCH) -> Ingested:
    return ingest_once(home, batch_size)


def backlog(home: str) -> int:
    inst = installation(home)
    with transaction(inst.db) as session:
        return max(inst.public.head() - store.cursor(session), 0)


def ingest_all(home: str, batch_size: int = DEFAULT_BATCH) -> Ingested:
    """Run ``ingest-batch`` tasks until the public database has nothing new."""
    total = Ingested()
    with progress.phase("ingest", backlog(home)) as bar:
        while True:
            batch = ingest_batch(home, batch_size)
            total.add(batch)
            if not batch.read:
                return total
            bar.advance(batch.read)


@flow(name="ingest")
def ingest(home: str, batch_size: int = DEFAULT_BATCH) -> Ingested:
    """Read every new row of the public database after the cursor."""
    return ingest_all(home, batch_size)
