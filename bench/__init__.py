"""Benchmarks of the full load (docs/benchmarks.md); ``python -m bench.fullload``."""
