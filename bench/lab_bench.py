"""Lab benchmark: ``lab up``/``lab down`` wall time for 3 and 10 nodes, and memory charged to an idle node.

``python -m bench.lab_bench [--quick] [--runs N]`` (root) prints a table. ``run(quick)`` returns the same figures
as ``bench.common.Figure`` objects for the ``python -m bench`` harness (a ``bench.scenarios.lab`` module can
simply re-export it). Agents are off, so the figures are the lab's own cost. Reference: lab-notes.md section 4
(3 nodes with sshd up in ~0.9 s, down in ~0.7 s; 10 nodes up in 3.8 s; 13-16 MiB per idle node).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from bench.common import Figure, fmt
from fleetpy.lab import Lab

IDLE_SETTLE_S = 3.0


def measure(nodes: int, runs: int, *, memory: bool) -> list[Figure]:
    up = Figure("lab", f"lab up ({nodes} nodes)", "s", [], reference="~0.9 s (3 nodes), 3.8 s (10 nodes), notes 4")
    down = Figure("lab", f"lab down ({nodes} nodes)", "s", [], reference="~0.7 s (3 nodes), notes 4")
    mem = Figure("lab", f"memory per idle node ({nodes}-node lab)", "MiB", [], reference="13-16 MiB, notes 4",
                 note="cgroup memory.current (v2) or memory.usage_in_bytes (v1) of the node, after "
                      f"{IDLE_SETTLE_S:.0f} s idle")
    for i in range(runs):
        state = tempfile.mkdtemp(prefix="fleetpy-lab-bench-")
        lab = Lab(f"b{os.getpid()}x{i}", state)
        try:
            start = time.perf_counter()
            lab.up(nodes=nodes, agents=False)
            up.samples.append(time.perf_counter() - start)
            if memory and i == 0:
                time.sleep(IDLE_SETTLE_S)
                for node in lab.nodes:
                    used = lab.memory_usage(node)
                    if used is not None:
                        mem.samples.append(used / 2**20)
            start = time.perf_counter()
            lab.down()
            down.samples.append(time.perf_counter() - start)
        finally:
            lab.down()
            shutil.rmtree(state, ignore_errors=True)
    return [up, down] + ([mem] if mem.samples else [])


def run(quick: bool = False, runs: int | None = None) -> list[Figure]:
    figures = measure(3, runs or (2 if quick else 5), memory=True)
    if not quick:
        figures += measure(10, runs or 3, memory=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lab_bench")
    parser.add_argument("--quick", action="store_true", help="3 nodes only, 2 runs")
    parser.add_argument("--runs", type=int, default=None, help="runs per size (default 5 for 3 nodes, 3 for 10)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the lab benchmark needs root", file=sys.stderr)
        return 1
    figures = run(quick=args.quick, runs=args.runs)
    rows = [("figure", "unit", "median", "min", "max", "n", "reference")]
    for f in figures:
        rows.append((f.name, f.unit, fmt(f.median, f.unit), fmt(min(f.samples), f.unit), fmt(max(f.samples), f.unit),
                     str(len(f.samples)), f.reference))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
