"""onboarding commands (being written)."""
