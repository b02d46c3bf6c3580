"""Importers: turning published sanction lists into signed entries (being written)."""
