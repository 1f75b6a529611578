"""Benchmarks (speed targets live here, never in timed tests)."""
