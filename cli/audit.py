"""audit commands (being written)."""
