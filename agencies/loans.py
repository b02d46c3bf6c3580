"""The credit register: refuses new loans (and cards) to borrowers under a credit measure."""

from __future__ import annotations

from interdict.agencies.simulated import Decision, SimulatedAgency


class CreditRegister(SimulatedAgency):
    name = "loans"

    def check_loan(self, *, identifier: str | None = None, name: str | None = None) -> Decision:
        """May a lender grant this borrower a new loan?"""
        found = [r for r in self.active_restrictions(identifier=identifier, name=name)
                 if any(m["type"].startswith("credit.") for m in r["measures"])]
        return Decision(allowed=not found, restrictions=found)
