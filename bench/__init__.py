"""Benchmarks: figures against the floor in ../shared/PERFORMANCE.md, never test asserts."""
