"""interdict: an inter-agency sanction-sharing workflow engine.

Signed sanction entries come in from a public database; verified, validated and routed, they go
out as signed directives to agency adapters; every action lands in a signed Merkle audit log.
See README.md for the tour and docs/ for the contracts.
"""

__version__ = "0.1.0"
