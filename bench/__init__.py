"""Benchmarks: one script per headline figure in docs/PERFORMANCE.md, each printing a
summary and writing machine-readable results to bench/results/ (see bench/common.py)."""
