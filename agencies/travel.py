"""The travel booking system: refuses bookings for travellers under a travel restriction.

Bookings are matched on a travel document (passport or national id). A directive whose subject
carries neither is flagged ``identity_not_established``: refusing by name alone would stop
every namesake, so the system will not act on it and says why.
"""

from __future__ import annotations

from typing import Any

from interdict.agencies.inbound import Flag
from interdict.agencies.simulated import Decision, SimulatedAgency

MATCHED_ON = ("passport", "national-id")  # what a booking records about the traveller


class TravelBooking(SimulatedAgency):
    name = "travel"

    def check_booking(self, *, identifier: str | None = None, name: str | None = None,
                      mode: str = "air") -> Decision:
        """May this traveller book a ticket by ``mode`` (air, rail, sea)?"""
        found = [r for r in self.active_restrictions(identifier=identifier, name=name)
                 if any(m["type"] == f"travel.{mode}" for m in r["measures"])]
        return Decision(allowed=not found, restrictions=found)

    def _flag(self, document: dict[str, Any]) -> Flag | None:
        identifiers = document.get("subject", {}).get("identifiers", [])
        if any(i["scheme"] in MATCHED_ON for i in identifiers):
            return None
        return Flag("identity_not_established",
                    "no passport or national-id among the identifiers received: bookings are "
                    "matched on those, and a name alone could refuse the wrong traveller")
