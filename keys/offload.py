"""Signature checks in a worker process, so that the engine's own process goes on meanwhile.

Neither PyNaCl nor cryptography lets another thread run while it checks an Ed25519
signature (measured here: a thread verifying beside one running Python takes as long as the
two one after the other), so threads cannot use a spare core for them; a process can. On a
machine with more than one core, the checks of a batch go to a worker process while the
engine does the rest of its work (ingest: the next batch's entries while it admits this one;
delivery: a batch's receipts while it records the last).

What comes back is a hint, never a decision: which tokens verified under which public key.
The caller still parses every token and checks everything else (key status, validity,
schema, ...), and verifies in place any token the hint does not cover: no spare core, a
worker that failed, a key that changed meanwhile. Either way the outcome is the same.

``INTERDICT_CHECK_WORKERS`` sets the number of worker processes (0: check in place). The
default is one on a machine with two cores or more, none on one core.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

from interdict.errors import VerificationError
from interdict.keys import jws

WORKERS_ENV = "INTERDICT_CHECK_WORKERS"
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


class Pending:
    """Checks under way in a worker; ``result`` waits for them."""

    def __init__(self, future: Future[list[tuple[int, str]]] | None,
                 tokens: Sequence[str], keys: Mapping[str, bytes]) -> None:
        self._future, self._tokens, self._keys = future, tokens, keys

    def result(self) -> Verified:
        """What verified; NOTHING if the worker failed (the caller then checks in place)."""
        if self._future is None:
            return NOTHING
        try:
            passed = self._future.result()
        except Exception as exc:
            _log.warning("signature checks in a worker process failed (%s); checking in "
                         "place from now on", exc)
            _discard_pool(broken=True)
            return NOTHING
        return Verified({self._tokens[i]: self._keys[kid] for i, kid in passed})


def check_elsewhere(tokens: Sequence[str], typ: str, keys: Mapping[str, bytes]) -> Pending:
    """Start checking ``tokens`` (JWS compact, of kind ``typ``) against ``keys`` (kid to raw
    Ed25519 public key) in a worker process; without one, nothing is started."""
    pool = _pool() if tokens and keys else None
    if pool is None:
        return Pending(None, tokens, keys)
    tokens, keys = list(tokens), dict(keys)
    try:
        future = pool.submit(verify_all, tokens, typ, keys)
    except RuntimeError:  # the pool broke or is shutting down
        _discard_pool(broken=True)
        return Pending(None, tokens, keys)
    return Pending(future, tokens, keys)


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


def workers() -> int:
    """Worker processes to use: ``INTERDICT_CHECK_WORKERS``, else one with a spare core."""
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured:
        try:
            return max(int(configured), 0)
        except ValueError:
            _log.warning("%s=%r is not a number; checking signatures in place",
                         WORKERS_ENV, configured)
            return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1
    return 1 if cores > 1 else 0


_POOL: ProcessPoolExecutor | None = None
_POOL_GUARD = threading.Lock()
_BROKEN = threading.Event()  # a worker failed: this process checks in place from then on


def _pool() -> ProcessPoolExecutor | None:
    global _POOL
    with _POOL_GUARD:
        if _POOL is None and not _BROKEN.is_set() and (count := workers()):
            # spawn, not fork: the engine's process runs threads (Prefect's, the delivery
            # threads), and a child forked from it could inherit a lock some thread held
            _POOL = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
        return _POOL


def _discard_pool(*, broken: bool = False) -> None:
    global _POOL
    if broken:
        _BROKEN.set()
    with _POOL_GUARD:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """Stop the worker processes (they start again when next needed)."""
    _discard_pool()


atexit.register(shutdown)
