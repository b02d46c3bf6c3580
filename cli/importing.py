"""importing commands (being written)."""
