"""Benchmarks for vlm-tui: `python -m bench.<module>`; figures go in BENCHMARKS.md."""
