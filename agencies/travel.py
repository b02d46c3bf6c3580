"""The travel booking system: refuses bookings for travellers under a travel restriction."""

from __future__ import annotations

from interdict.agencies.simulated import Decision, SimulatedAgency


class TravelBooking(SimulatedAgency):
    name = "travel"

    def check_booking(self, *, identifier: str | None = None, name: str | None = None,
                      mode: str = "air") -> Decision:
        """May this traveller book a ticket by ``mode`` (air, rail, sea)?"""
        found = [r for r in self.active_restrictions(identifier=identifier, name=name)
                 if any(m["type"] == f"travel.{mode}" for m in r["measures"])]
        return Decision(allowed=not found, restrictions=found)
