"""Benchmarks, each beside a baseline measured in the same run: ``python -m bench.fullload`` (conversion,
import, memory; docs/benchmarks.md) and ``python -m bench.sync`` (sync latency and throughput;
docs/benchmarks-sync.md)."""
