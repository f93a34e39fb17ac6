"""Benchmarks: programs that print figures (never tests with time limits)."""
