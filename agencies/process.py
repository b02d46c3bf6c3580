"""A simulated agency in a process of its own, as a real agency system would be.

With the manifest setting ``"process": "own"``, a built-in simulated agency (travel, loans,
permits) keeps its store, key and checks exactly as before, but does its work in a child
process: it verifies each directive and signs each receipt on a core the engine is not using,
and outside the engine's GIL. The engine sends a batch of directives down a pipe and gets the
receipts back; it still checks every receipt itself. The benchmark runs the agencies this way
(docs/performance.md), so that the engine's figures are the engine's work.

The child is started on the first batch and lives as long as the adapter; it ends when the
pipe closes (the engine exited or closed the adapter). If it dies, the batch in flight fails
as a delivery failure and is retried like any other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from interdict.agencies.base import AdapterContext

if TYPE_CHECKING:
    from interdict.agencies.simulated import SimulatedAgency

SETTING = "process"
OWN = "own"
# Not ``-m interdict.agencies.process``: the package imports this module first, and runpy
# warns about running a module that is already imported.
_CHILD = "import sys; from interdict.agencies.process import main; main(sys.argv[1:])"


class AgencyProcess:
    """The engine's end of one agency's child process."""

    def __init__(self, agency: type[SimulatedAgency], context: AdapterContext) -> None:
        to_child, send = os.pipe()
        recv, from_child = os.pipe()
        # Its output is not ours to mix into the engine's (the benchmark reads JSON there).
        self._child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(to_child), str(from_child)],
            pass_fds=(to_child, from_child), close_fds=True, stdout=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._out = Connection(send, readable=False)
        self._in = Connection(recv, writable=False)
        self._lock = threading.Lock()  # one batch in flight per agency
        self._sent = 0
        # The engine's signing callback stays here: a simulated agency never signs as it.
        portable = AdapterContext(manifest=dict(context.manifest), data_dir=context.data_dir,
                                  engine_keys=dict(context.engine_keys))
        try:
            self._out.send((agency, portable))
        except BaseException:
            self.close()
            raise

    def deliver(self, directives: Sequence[str]) -> list[str]:
        """The receipts for one batch.

        Raises:
            RuntimeError: the child failed or is gone (the adapter turns it into a
            DeliveryError, and the batch is retried).
        """
        with self._lock:
            self._sent += 1
            try:
                self._out.send((self._sent, list(directives)))
                number, kind, value = self._in.recv()
            except (EOFError, OSError) as exc:
                raise RuntimeError(f"the agency's process (pid {self._child.pid}) is gone: "
                                   f"{exc or type(exc).__name__}") from None
        # An answer to an earlier batch (one interrupted between send and receive) would pair
        # receipts with the wrong directives: the pipe is out of step, and the caller closes it.
        if number != self._sent:
            raise RuntimeError(f"the agency's process answered batch {number}, not "
                               f"{self._sent}")
        if kind != "receipts":
            raise RuntimeError(f"the agency's process failed: {value}")
        return list(value)

    def close(self) -> None:
        with self._lock:  # after the batch in flight, if any
            self._out.close()
            self._in.close()
        try:
            self._child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


def serve(reading: Connection, writing: Connection) -> None:
    """The child's loop: one batch in, its receipts (or the error) out, until the pipe ends."""
    agency_class, context = reading.recv()
    agency = agency_class(context)
    while True:
        try:
            number, batch = reading.recv()
        except (EOFError, OSError):  # the engine closed the pipe, maybe mid-message
            return
        answer: tuple[int, str, Any]
        try:
            answer = (number, "receipts", list(agency.deliver_here(batch)))
        except Exception as exc:  # reported to the engine as this batch's failure
            answer = (number, "error", f"{type(exc).__name__}: {exc}")
        writing.send(answer)


def main(argv: list[str]) -> None:
    """The child process: its two pipe descriptors are its arguments."""
    serve(Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False))
