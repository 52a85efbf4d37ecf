"""Benchmarks: scripts that print ratios measured in one run (never timed unit tests)."""
