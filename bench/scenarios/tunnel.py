"""Remote control: ``--tunnel`` and ``status`` against a real lab (fleet-reference.md 1.1-1.3; issue "SSH").

A 2-node lab; 500 units (quick: 100) are written directly with the Registry as launched on 9 registered stand-in
machines (``bench.scenarios.cli.populate``) before fleetpyd starts in the nodes (so that its engine finds them
placed), then one real unit is started, pinned to node2 (the engine would otherwise pick a stand-in). Then
the real ``fleetpy`` runs as a user types it (5 runs each, wall time of the whole command, start-up included):
``list-units`` straight to etcd and with ``--tunnel NODE1`` (one SSH connection to the node's sshd, direct-tcpip
channels to etcd as the node sees it); ``status UNIT`` of the real unit (SSH to its node, ``systemctl status``),
directly and through the tunnel. Target (issue "SSH"): tunnelled ``list-units`` under 2x the direct one and under
1 s; ``status`` under 0.5 s (issue "benchmarks").
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, wait_until
from bench.scenarios.cli import populate
from fleetpy.lab import Lab
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry

FLEETPY = str(Path(sys.executable).parent / "fleetpy")
UNIT = "[Unit]\nDescription=tunnel bench\n\n[Service]\nExecStart=/bin/sleep infinity\n"
RUNS = 5


def timed(env: dict[str, str], cwd: str, *args: str) -> tuple[list[float], subprocess.CompletedProcess[str]]:
    samples, proc = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.run([FLEETPY, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"fleetpy {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    assert proc is not None
    return samples, proc


def run(quick: bool) -> list[Figure]:
    n = 100 if quick else 500
    workdir = tempfile.mkdtemp(prefix="fleetpy-bench-")
    lab = Lab(f"bt{os.getpid() % 10000}", workdir)
    lab.up(nodes=2, agents=False)
    try:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLEETCTL_")}, **lab.env()}
        registry = Registry(EtcdStore(lab.etcd_endpoints, timeout=30))
        try:
            populate(registry, n, [f"{i:032x}" for i in range(1, 10)])
            for node in lab.nodes:
                lab.start_agent(node)
            if not wait_until(lambda: len(registry.machines()) == 11, 30):
                raise RuntimeError("the lab's agents did not register")
        finally:
            registry.store.close()
        Path(workdir, "real.service").write_text(UNIT + f"\n[X-Fleet]\nMachineID={lab.machine_id('node2')}\n")
        subprocess.run([FLEETPY, "start", "real.service"], env=env, cwd=workdir, check=True, capture_output=True,
                       timeout=60)
        node1 = lab.node_ip("node1")
        rows = [
            ("list-units", (), ()),
            ("list-units", ("--tunnel", node1), ()),
            ("status", (), ("real.service",)),
            ("status", ("--tunnel", node1), ("real.service",)),
        ]
        results = {}
        for command, options, args in rows:
            samples, proc = timed(env, workdir, *options, command, *args)
            if command == "status" and "Active: active" not in proc.stdout:
                raise RuntimeError(f"status shows no active unit: {proc.stdout[-300:]}")
            results[(command, bool(options))] = samples
    finally:
        lab.down()
    figures = []
    for command in ("list-units", "status"):
        direct, tunnelled = results[(command, False)], results[(command, True)]
        ratio = [t / d for t, d in zip(sorted(tunnelled), sorted(direct), strict=True)]
        what = f"`{command}`" + (f" at {n + 1} units" if command == "list-units" else " of a unit on another node")
        target = 0.5 if command == "status" else None
        figures += [
            Figure("tunnel", f"{what} (2-node lab)", "s", direct, target=f"< {target} s" if target else "",
                   target_value=target, note="SSH to the hosting node" if command == "status" else "straight to etcd"),
            Figure("tunnel", f"{what} with --tunnel node1", "s", tunnelled,
                   target="< 1.0 s" if command == "list-units" else "", target_value=1.0 if command == "list-units"
                   else None),
            Figure("tunnel", f"{what}: --tunnel / direct (ratio of sorted samples)", "x", ratio,
                   target="< 2x" if command == "list-units" else "",
                   target_value=2.0 if command == "list-units" else None),
        ]
    return figures
