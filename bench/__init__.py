"""Benchmarks: scripts that measure fleet on the lab (docs/benchmarks.md)."""
