"""Signatures in a worker process, so that the engine's own process goes on meanwhile.

Neither PyNaCl nor cryptography lets another thread run while it signs or checks an Ed25519
signature (measured here: a thread verifying beside one running Python takes as long as the
two one after the other), so threads cannot use a spare core for them; a process can. On a
machine with more than one core, a worker process
- checks the next batch's entries while ingest admits this one (``check_elsewhere``), and a
  batch's receipts while delivery records the last;
- signs a batch's directives while routing builds and stores them (``sign_all``).

A check that comes back is a hint, never a decision: which tokens verified under which public
key. The caller still parses every token and checks everything else (key status, validity,
schema, ...), and verifies in place any token the hint does not cover: no spare core, a
worker that failed, a key that changed meanwhile. Signatures are deterministic, so a token
signed by the worker is the same bytes as one signed in place. Either way the outcome is the
same.

``INTERDICT_SIGNATURE_WORKERS`` sets the number of worker processes (0: all in place). The
default is one on a machine with two cores or more, none on one core. The workers are started
with ``spawn``, which imports the program's main module again (Python's multiprocessing
rule): a script that runs interdict must guard its work with ``if __name__ == "__main__"``.

With ``INTERDICT_DASK_SCHEDULER`` set, the checks go to a Dask cluster instead (keys/cluster.py);
signing stays in the local worker, beside the engine's private key.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import multiprocessing.util
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

from interdict.errors import VerificationError
from interdict.keys import cluster, jws

WORKERS_ENV = "INTERDICT_SIGNATURE_WORKERS"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verified:
    """Tokens whose signature verified in a worker, each with the public key it verified
    under."""

    keys_by_token: Mapping[str, bytes] = field(default_factory=dict)

    def covers(self, token: str, public_key: bytes) -> bool:
        """True if ``token``'s signature verified under exactly ``public_key``."""
        return self.keys_by_token.get(token) == public_key


NOTHING = Verified()
#: fewer tokens than this are signed or checked in place: the round trip to a worker (and on
#: first use, starting it) costs more than it saves
_LEAST_TO_SEND = 64
#: a worker answers a batch in well under a second; one that has not in this long (a cluster
#: with no workers left, say) is given up on, and the batch is checked in place
_ANSWER_TIMEOUT_S = 120.0
#: documents per message to the worker: the first comes back soon, so the caller starts on it
#: while the worker signs the rest
_CHUNK = 250


class Pending:
    """Checks under way in a worker or on the cluster; ``result`` waits for them."""

    def __init__(self, future: Future[list[tuple[int, str]]] | None,
                 tokens: Sequence[str], keys: Mapping[str, bytes],
                 failed: Callable[[BaseException], None] | None = None) -> None:
        self._future, self._tokens, self._keys = future, tokens, keys
        self._failed = failed or _pool_failed
        self._verified: Verified | None = None

    def result(self) -> Verified:
        """What verified; NOTHING if the checks failed (the caller then checks in place).
        Waits the first time only."""
        if self._verified is None:
            self._verified = self._wait()
        return self._verified

    def _wait(self) -> Verified:
        if self._future is None:
            return NOTHING
        try:
            passed = self._future.result(timeout=_ANSWER_TIMEOUT_S)
        except Exception as exc:  # TimeoutError included: the cluster may have no workers
            self._failed(exc)
            return NOTHING
        return Verified({self._tokens[i]: self._keys[kid] for i, kid in passed})


def enabled() -> bool:
    """Whether this process has somewhere to send checks (a worker starts on first use)."""
    return _checker() is not None


def check_elsewhere(tokens: Sequence[str], typ: str, keys: Mapping[str, bytes]) -> Pending:
    """Start checking ``tokens`` (JWS compact, of kind ``typ``) against ``keys`` (kid to raw
    Ed25519 public key) on a Dask cluster or in a worker process; without either, nothing is
    started."""
    where = _checker() if len(tokens) >= _LEAST_TO_SEND and keys else None
    if where is None:
        return Pending(None, tokens, keys)
    executor, failed = where
    tokens, keys = list(tokens), dict(keys)
    try:
        future = executor.submit(verify_all, tokens, typ, keys)
    except Exception as exc:  # the pool broke or is shutting down, the cluster is gone, ...
        failed(exc)
        return Pending(None, tokens, keys)
    return Pending(future, tokens, keys, failed)


def verify_all(tokens: Sequence[str], typ: str, keys: Mapping[str, bytes]) -> list[tuple[int, str]]:
    """The index and kid of each token that parses as ``typ`` and verifies under the key its
    kid names in ``keys``; runs in the worker (and in tests, in place)."""
    passed = []
    for index, token in enumerate(tokens):
        try:
            parsed = jws.parse(token, typ)
            key = keys.get(parsed.kid)
            if key is not None:
                jws.verify_signature(parsed, key)
                passed.append((index, parsed.kid))
        except VerificationError:
            continue
    return passed


def sign_all(signer: jws.Signer, payloads: Iterable[bytes], typ: str) -> Iterator[str]:
    """Each payload signed as a JWS compact of kind ``typ``, in order. With a worker process,
    each chunk goes to it as soon as ``payloads`` has yielded it, so the worker signs while
    the caller makes the next ones, and the caller then works on the first tokens while the
    worker signs the last. Ed25519 signatures are deterministic: the tokens are the same
    bytes as ``signer.sign`` makes in place."""
    pool = _pool()
    chunks: list[list[bytes]] = []
    futures: list[Future[list[str]] | None] = []
    items = iter(payloads)
    while chunk := list(itertools.islice(items, _CHUNK)):
        chunks.append(chunk)
        future = None
        if pool is not None and (len(chunk) >= _LEAST_TO_SEND or len(chunks) > 1):
            try:
                future = pool.submit(sign_chunk, signer.seed(), typ, chunk)
            except RuntimeError as exc:  # the pool broke or is shutting down
                _pool_failed(exc)
                pool = None
        futures.append(future)
    return _signed(signer, typ, chunks, futures)


def _signed(signer: jws.Signer, typ: str, chunks: list[list[bytes]],
            futures: list[Future[list[str]] | None]) -> Iterator[str]:
    failed = False
    for index, future in enumerate(futures):
        # let go of each chunk and its tokens once they are handed on
        chunk, chunks[index], futures[index] = chunks[index], [], None
        tokens = None
        if future is not None and not failed:
            try:
                tokens = future.result()
            except Exception as exc:
                _pool_failed(exc)
                failed = True
        yield from tokens if tokens is not None else (signer.sign(p, typ) for p in chunk)


def sign_chunk(seed: bytes, typ: str, payloads: Sequence[bytes]) -> list[str]:
    """Runs in the worker: the tokens for ``payloads``, signed with ``seed``."""
    signer = _signer(seed)
    return [signer.sign(payload, typ) for payload in payloads]


@lru_cache(maxsize=8)
def _signer(seed: bytes) -> jws.Signer:
    return jws.Signer.from_seed(seed)


def workers() -> int:
    """Worker processes to use: ``INTERDICT_SIGNATURE_WORKERS``, else one with a spare core."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured:
        return _configured(configured)
    return 1 if usable_cores() > 1 else 0


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@lru_cache(maxsize=8)  # one warning per value, not one per batch
def _configured(value: str) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        _log.warning("%s=%r is not a number of processes; signatures are made and checked "
                     "in the engine's process", WORKERS_ENV, value)
        return 0


_POOL: ProcessPoolExecutor | None = None
_POOL_GUARD = threading.Lock()
_BROKEN = threading.Event()  # a worker failed: this process works in place from then on


def _checker() -> tuple[Executor, Callable[[BaseException], None]] | None:
    """Where checks go, and what to do if they fail there: the Dask cluster if one is named
    and has not failed, else the local worker. A failure of one leaves the other in use."""
    on_cluster = cluster.executor()
    if on_cluster is not None:
        return on_cluster, cluster.failed
    pool = _pool()
    return None if pool is None else (pool, _pool_failed)


def _pool_failed(exc: BaseException) -> None:
    _log.warning("signature work in a worker process failed (%s); it is done in place from "
                 "now on", exc or type(exc).__name__)
    _discard_pool(broken=True)


def _pool() -> ProcessPoolExecutor | None:
    global _POOL
    with _POOL_GUARD:
        if _POOL is None and not _BROKEN.is_set() and (count := workers()):
            # spawn, not fork: the engine's process runs threads (Prefect's, the delivery
            # threads), and a child forked from it could inherit a lock some thread held
            _POOL = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
        return _POOL


def _discard_pool(*, broken: bool = False, wait: bool = False) -> None:
    global _POOL
    if broken:
        _BROKEN.set()
    with _POOL_GUARD:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=wait, cancel_futures=True)


def shutdown(*, wait: bool = False) -> None:
    """Stop the worker processes and leave the Dask cluster (both start again when next
    needed); ``wait``: until the workers have exited."""
    _discard_pool(wait=wait)
    cluster.close()


def _at_exit() -> None:
    shutdown(wait=True)


atexit.register(_at_exit)
# A process started by multiprocessing joins its children (the workers among them) before
# its atexit hooks run, and the workers only exit when told. So the workers are also told,
# and waited for, by a finalizer that runs before that join, and before those of the queue
# that carries the telling (priority 10).
multiprocessing.util.Finalize(None, _at_exit, exitpriority=20)
