"""Cheap probes for the scale benchmarks: etcd's ``/metrics``, and ``/proc`` figures of a process (progress is
followed by ``bench.observer``)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections import Counter


def etcd_requests(endpoint: str) -> Counter[str]:
    """etcd's ``etcd_http_received_total`` by method (and ``total``): every v2 request it has received."""
    out: Counter[str] = Counter()
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_http_received_total"):
                value = float(line.rsplit(" ", 1)[1])
                method = line.split('method="', 1)[1].split('"', 1)[0] if 'method="' in line else "?"
                out[method] += int(value)
                out["total"] += int(value)
    return out


def etcd_fsync(endpoint: str) -> tuple[float, int]:
    """etcd's WAL fsyncs so far: (seconds in total, count)."""
    total, count = 0.0, 0
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_disk_wal_fsync_duration_seconds_sum"):
                total = float(line.rsplit(" ", 1)[1])
            elif line.startswith("etcd_disk_wal_fsync_duration_seconds_count"):
                count = int(float(line.rsplit(" ", 1)[1]))
    return total, count


def boost(pid: int, nice: int = -10) -> bool:
    """Give the process's scheduler autogroup (its session) more CPU weight than the others', as a dedicated etcd
    host would have; False when not permitted (not root) or autogroups are off."""
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(nice))
        return True
    except OSError:
        return False


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` (KiB) and ``Threads`` of a process, and its CPU time in clock ticks (``cpu``)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "Threads"):
                out[name] = int(value.split()[0])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu"] = int(fields[11]) + int(fields[12])  # utime + stime
    return out


def cpu_seconds(pid: int) -> float:
    return proc_status(pid)["cpu"] / os.sysconf("SC_CLK_TCK")
