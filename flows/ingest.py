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
from interdict.keys import jws, offload
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
    # Waiting for the worker (or the cluster) happens here, not in the transaction, which
    # on SQLite holds the file's one write lock.
    _checks_ahead.wait(home)
    checking_ahead = offload.enabled()
    with transaction(inst.db) as session:
        position = store.cursor(session)
        rows = inst.public.read_after(position, batch_size)
        if not rows:
            return Ingested(position=position)
        trust = TrustSnapshot.load(session)
        verified = _checks_ahead.take(home, position)
        if checking_ahead:
            _checks_ahead.start(home, rows[-1].seq,
                                inst.public.read_after(rows[-1].seq, batch_size),
                                trust.keys_of("issuer"))
        admission = Admission(trust, store.known_status(session, _claimed_keys(rows)), utcnow(),
                              policy.admission_policy(session), verified)
        outcomes = [admission.admit(row) for row in rows]
        store.record(session, outcomes, rows[-1].seq)
    accepted = sum(isinstance(o, Accepted) for o in outcomes)
    return Ingested(len(rows), accepted, len(rows) - accepted, rows[-1].seq)


class _ChecksAhead:
    """The signature checks of the batch after the one being admitted, under way in a worker
    process (keys/offload.py) meanwhile; one per home, kept until that batch is read.

    That batch is read again when its turn comes, in its own transaction, and the hint
    matches it token by token: a row the read ahead missed or saw differently is checked in
    place. The second read costs about 4 ms per thousand rows here."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, offload.Pending]] = {}

    def start(self, home: str, after: int, rows: list[Published], keys: dict[str, bytes]) -> None:
        self._pending[home] = (after, offload.check_elsewhere([r.jws for r in rows],
                                                              jws.TYP_ENTRY, keys))

    def wait(self, home: str) -> None:
        """Until the checks started for ``home``, if any, have come back."""
        started = self._pending.get(home)
        if started is not None:
            started[1].result()

    def take(self, home: str, after: int) -> offload.Verified:
        """What verified of the rows after ``after``, if their checks were started."""
        started = self._pending.pop(home, None)
        if started is None or started[0] != after:
            return offload.NOTHING
        return started[1].result()


_checks_ahead = _ChecksAhead()


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
