"""Benchmarks: figures printed against the floor in ../shared/PERFORMANCE.md, never asserted in tests."""
