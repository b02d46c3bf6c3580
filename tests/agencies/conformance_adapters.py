"""Adapters that break one rule each, for the conformance kit's tests.

Each is the built-in simulation with one thing wrong, as a careless adapter author might
write it. Tests put this folder on sys.path and register the classes under the
``interdict.adapters`` entry-point group with a dist-info folder of their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interdict.agencies.base import AdapterContext
from interdict.agencies.conformance import action_of
from interdict.agencies.simulated import Answer, SimulatedAgency, _claimed_id
from interdict.errors import DocumentError, VerificationError
from interdict.keys import jws
from interdict.keys.jwk import b64u


class UnsignedReceipts(SimulatedAgency):
    """Answers with receipts that carry no signature."""

    name = "unsigned-receipts"

    def _receipt(self, directive_id: str, status: str, detail: str | None,
                 **_: Any) -> str:
        header = {"alg": "none", "typ": jws.TYP_RECEIPT}
        body = {"schema": "interdict/receipt/v1", "directive_id": directive_id,
                "agency": self.agency_id, "status": status, "at": "2026-11-27T00:00:00Z"}
        return f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(body).encode())}."


class NotIdempotent(SimulatedAgency):
    """Applies every delivery again, and says "applied" to a repeat."""

    name = "not-idempotent"

    def _apply_one(self, batch: Any, token: str,
                   document: dict[str, Any] | VerificationError | DocumentError) -> Answer:
        if isinstance(document, VerificationError | DocumentError):
            return Answer(_claimed_id(token), "rejected", f"{document.code}: {document.message}")
        return Answer(document["directive_id"], "applied", self._apply(batch, document),
                      document["action"])


class IgnoresLifts(SimulatedAgency):
    """Acknowledges lifts and does nothing about them."""

    name = "ignores-lifts"

    def _apply(self, batch: Any, document: dict[str, Any]) -> str | None:
        if document["action"] == "lift":
            return None
        return super()._apply(batch, document)


SWALLOWER_KEY = Ed25519PrivateKey.generate()


class SwallowsFailures(SimulatedAgency):
    """Keeps its key in memory and, when its store fails, answers "applied" anyway."""

    name = "swallows-failures"

    @classmethod
    def provision(cls, context: AdapterContext) -> bytes:
        return jws.Signer(SWALLOWER_KEY).public_key

    @cached_property
    def _signer(self) -> jws.Signer:
        return jws.Signer(SWALLOWER_KEY)

    def _deliver(self, directives: Sequence[str]) -> Sequence[str]:
        try:
            return list(super()._deliver(directives))
        except Exception:
            return [self._receipt(_claimed_id(t), "applied", None, action=action_of(t))
                    for t in directives]


class OverridesDeliver(SimulatedAgency):
    """Replaces the base class's deliver(), and with it the error wrapping."""

    name = "overrides-deliver"

    def deliver(self, directives: Sequence[str]) -> list[Any]:
        return list(self._deliver(directives))


FOREIGN_KEY = Ed25519PrivateKey.generate()


class ForeignKeyed(SimulatedAgency):
    """An agency whose receipt key lives elsewhere (its own HSM, say): it provisions nothing,
    so the manifest's public_keys are all the kit can trust."""

    name = "foreign-keyed"
    provision = None  # type: ignore[assignment]

    @cached_property
    def _signer(self) -> jws.Signer:
        return jws.Signer(FOREIGN_KEY)


ALL = (UnsignedReceipts, NotIdempotent, IgnoresLifts, SwallowsFailures, OverridesDeliver,
       ForeignKeyed)
