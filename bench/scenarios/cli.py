"""The CLI at scale: a real etcd holding 10,000 units (quick: 1,000) with targets, states and heartbeats on 10
registered machines, written directly with the Registry; then the real ``fleetpy`` run as a subprocess, as a user
types it: ``list-units``, ``list-unit-files``, ``cat UNIT``, ``status UNIT``, 5 runs each (median), next to real
fleet's figures at 1,000 units (fleet-reference.md 7.1) and ``fleetpy --version`` (the start-up every command pays).

``status`` runs ``systemctl status`` on the machine hosting the unit: that machine is registered with this host's
``/etc/machine-id``, so the command runs locally, without SSH. Where systemd is not PID 1 (a container, CI)
``systemctl`` fails at once, so the figure then measures the CLI's start-up and registry lookups, not systemd.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import Figure, stopwatch
from fleetpy.model.records import JobState, MachineState, Unit, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from fleetpy.ssh.remote import local_machine_id
from fleetpy.testing import EtcdServer

FLEETPY = str(Path(sys.executable).parent / "fleetpy")
TEMPLATE = "[Unit]\nDescription=Sleeper %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"
TTL = 3600  # states and heartbeats must outlive the measurements
RUNS = 5
REFERENCE = {"list-units": "0.070 s", "list-unit-files": "0.153 s", "cat": "0.038 s", "status": "0.053 s"}
TARGET = {"list-units": 2.0, "cat": 0.5, "status": 0.5}


def populate(registry: Registry, n: int, machines: list[str]) -> float:
    """``n`` launched units, round-robin over ``machines``: job, target, state and heartbeat (16 threads)."""
    unit_file = UnitFile.parse(TEMPLATE)
    for i, machine in enumerate(machines):
        registry.create_machine_state(MachineState(machine, public_ip=f"10.0.0.{i + 1}"), TTL)

    def write(i: int) -> None:
        name, machine = f"sleeper@{i}.service", machines[i % len(machines)]
        registry.create_unit(Unit(name, unit_file, JobState.LAUNCHED))
        registry.schedule_unit(name, machine)
        registry.save_unit_state(UnitState(name, machine, "loaded", "active", "running", unit_file.hash), TTL)
        registry.unit_heartbeat(name, machine, TTL)

    with stopwatch() as elapsed, ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(n)))
    return elapsed()


def timed(url: str, *args: str) -> tuple[list[float], subprocess.CompletedProcess[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCTL_")}
    samples = []
    proc = None
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.run([FLEETPY, "--driver", "etcd", "--endpoint", url, *args], env=env, capture_output=True)
        samples.append(time.perf_counter() - start)
    assert proc is not None
    return samples, proc


def first_line(data: bytes) -> str:
    lines = data.decode(errors="replace").strip().splitlines()
    return lines[0][:100] if lines else ""


def run(quick: bool) -> list[Figure]:
    n = 1_000 if quick else 10_000
    here = local_machine_id()
    machines = [f"{i:032x}" for i in range(1, 10)] + [here or f"{10:032x}"]
    # sleeper@9 lives on machines[9], this host: status runs locally
    figures: list[Figure] = []
    with EtcdServer(name="bench-cli") as server:
        registry = Registry(EtcdStore(server.url, timeout=30))
        written = populate(registry, n, machines)
        registry.store.close()
        version, _ = timed(server.url, "--version")
        figures.append(Figure("cli", "`fleetpy --version` (start-up only)", "s", version,
                              note=f"{n} units written beforehand in {written:.1f} s (16 threads)"))
        commands = [("list-units", ()), ("list-unit-files", ()), ("cat", ("sleeper@77.service",)),
                    ("status", ("sleeper@9.service",))]
        for command, args in commands:
            samples, proc = timed(server.url, command, *args)
            lines = proc.stdout.count(b"\n")
            if command.startswith("list") and (proc.returncode != 0 or lines != n + 1):
                raise RuntimeError(f"{command}: exit {proc.returncode}, {lines} lines: {proc.stderr[-300:]!r}")
            if command == "cat" and b"ExecStart=/bin/sleep infinity" not in proc.stdout:
                raise RuntimeError(f"cat: exit {proc.returncode}: {proc.stderr[-300:]!r}")
            note = f"exit {proc.returncode}, {len(proc.stdout)} bytes out"
            if command == "status":
                if not here:
                    note += "; no /etc/machine-id: status of a machine without SSH"
                elif proc.returncode != 0:
                    note += ("; local systemctl failed at once (systemd is not PID 1 here): measures start-up and "
                             f"the registry lookups: {first_line(proc.stderr)}")
            target = TARGET.get(command)
            figures.append(Figure("cli", f"`{command}` at {n} units, 10 machines", "s", samples,
                                  reference=f"{REFERENCE[command]} (1,000 units)",
                                  target=f"< {target} s" if target else "", target_value=target, note=note))
    return figures
