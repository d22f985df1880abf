"""Benchmark scenarios: each module has ``run(quick: bool) -> list[Figure]``."""
