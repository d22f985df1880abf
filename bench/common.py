"""Shared benchmark helpers: figures (median/min/max/p90 over repeated runs), machine facts, result records."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Figure:
    """One measured quantity with its reference (real fleet) and target, for the results table."""

    scenario: str
    name: str
    unit: str
    samples: list[float]
    reference: str = ""
    target: str = ""
    target_value: float | None = None  # numeric upper bound, when the target is one
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def p90(self) -> float:
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]

    @property
    def met(self) -> bool | None:
        if self.target_value is None or not self.samples:
            return None
        return self.median < self.target_value

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(median=self.median, p90=self.p90, min=min(self.samples, default=None),
                   max=max(self.samples, default=None), met=self.met)
        return out


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_quiet(threshold: float = 0.3, window: float = 0.25, timeout: float = 5.0) -> bool:
    """Wait until the machine's CPUs were busy less than ``threshold`` of a ``window`` (at most ``timeout`` s):
    a measured start should not share the CPUs with the teardown of what ran before it."""
    def busy() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = busy()
        time.sleep(window)
        after = busy()
        if (after[0] - before[0]) < threshold * max(1, after[1] - before[1]):
            return True
    return False


def calibration() -> float:
    """CPU seconds of a fixed pure-Python loop (3 M additions): how fast a CPU second is at that moment. On this
    kind of machine it ranged from 0.08 to 0.15 s within an hour, and the CPU of every process of a lab start with
    it, so a figure is worth reading next to it."""
    started = time.thread_time()
    total = 0
    for i in range(3_000_000):
        total += i
    return time.thread_time() - started


def machine_facts() -> dict[str, Any]:
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    mem_kib = 0
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "commit": run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "etcd": run("etcd", "--version").splitlines()[0] if run("etcd", "--version") else "",
        "systemd": run("systemctl", "--version").splitlines()[0] if run("systemctl", "--version") else "",
    }


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "-"
    if unit == "s":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if unit in ("MiB", "req/min", "CPU-s"):
        return f"{value:.1f}"
    return f"{value:g}"
