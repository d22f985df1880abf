"""The benchmarks cannot rot: ``python -m bench --quick --no-record`` runs the etcd-backed scenarios (the lab ones,
``lab`` and ``cluster``, need root and run under ``make bench`` itself) and must exit 0 with its table printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetpy.testing import etcd_binary

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["scheduler", "registry", "simulation", "cli"]


@pytest.mark.slow
@pytest.mark.etcd
@pytest.mark.timeout(300)
def test_quick_benchmarks_run() -> None:
    if etcd_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("etcd binary missing in CI: apt-get install etcd-server")
        pytest.skip("etcd not installed")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--no-record", "--only", *SCENARIOS],
                          cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "| scenario | figure | median |" in proc.stdout, proc.stdout[-3000:]
    for name in SCENARIOS:
        assert f"| {name} |" in proc.stdout, f"no figure from {name}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
