"""The adapter protocol: how interdict hands directives to an agency's system.

An adapter implements two small methods over interdict's own documents (JWS compact strings):
``_deliver`` a batch of signed directives and return one signed receipt per directive, and
``_holdings`` to report what it holds (for reconcile). The public methods here wrap whatever
the agency's system raises into ``DeliveryError`` and check the answer's shape, so no adapter
can forget either (the lesson of python-tuf's FetcherInterface).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from interdict.errors import DeliveryError


@dataclass(frozen=True)
class AdapterContext:
    """What interdict gives an adapter: its manifest, a folder, and interdict's public keys."""

    manifest: Mapping[str, Any]
    data_dir: Path
    engine_keys: Mapping[str, bytes] = field(default_factory=dict)  # kid -> raw Ed25519 key
    #: signs raw bytes with interdict's engine key (webhook-signature); None outside the engine
    engine_sign: Callable[[bytes], bytes] | None = None

    @property
    def agency_id(self) -> str:
        return str(self.manifest["id"])


class Adapter(abc.ABC):
    """Base class of every agency adapter."""

    #: the name manifests use in their ``adapter`` member (the entry-point name)
    name: ClassVar[str]

    def __init__(self, context: AdapterContext) -> None:
        self.context = context

    @property
    def agency_id(self) -> str:
        return self.context.agency_id

    def deliver(self, directives: Sequence[str]) -> list[str | DeliveryError]:
        """Deliver signed directives; return one signed receipt (JWS compact) per directive,
        or a ``DeliveryError`` in its place when only that directive failed (e.g. one HTTP
        call of several).

        Raises:
            DeliveryError: the agency could not be reached, failed, or answered out of shape.
        """
        if not directives:
            return []
        try:
            receipts = self._deliver(directives)
        except DeliveryError:
            raise
        except Exception as exc:  # an adapter's own failure is a delivery failure, never a crash
            raise DeliveryError(f"agency {self.agency_id}: {type(exc).__name__}: {exc}",
                                code="delivery.adapter") from exc
        if len(receipts) != len(directives):
            raise DeliveryError(f"agency {self.agency_id} answered {len(receipts)} receipts for "
                                f"{len(directives)} directives", code="delivery.shape")
        return list(receipts)

    def holdings(self) -> list[str]:
        """The directive ids whose effect the agency currently holds (impositions in force)."""
        try:
            return list(self._holdings())
        except Exception as exc:
            raise DeliveryError(f"agency {self.agency_id}: cannot list holdings: {exc}",
                                code="delivery.holdings") from exc

    @abc.abstractmethod
    def _deliver(self, directives: Sequence[str]) -> Sequence[str | DeliveryError]:
        """Apply each directive once (a repeat is answered ``duplicate``) and sign receipts;
        a ``DeliveryError`` in place of a receipt fails that directive alone."""

    @abc.abstractmethod
    def _holdings(self) -> Sequence[str]:
        """The directive ids in force at the agency."""

    def close(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Release connections; the default has none."""
