"""Lab cost: ``lab up``/``lab down`` for 3 and 10 nodes and memory per idle node (see bench/lab_bench.py)."""

from __future__ import annotations

from bench.lab_bench import run

__all__ = ["run"]
