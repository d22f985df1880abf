"""fleetpy's benchmarks: ``make bench`` (or ``python -m bench [--quick]``) runs every scenario, prints a table and
records machine-readable results in ``bench/results/`` and the latest table in ``bench/RESULTS.md``.

Timings live here, never in tests (the test suite runs ``--quick`` once so the benchmarks cannot rot).
"""
