"""delivery commands (being written)."""
