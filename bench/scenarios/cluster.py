"""The whole stack in the lab (real systemd nodes, fleetpyd in each, one etcd): start latency, throughput,
destroy, failover, idle etcd cost and CPU, measured against real fleet's figures (fleet-reference.md 7.1).

Completion (scheduled, active, gone: what ``list-units`` shows) is followed from watch streams in the bench's
process (``bench.observer``) and checked every 5-50 ms; the commands are the real ``fleetpy`` CLI run as a user
would, so their wall time includes the CLI's own start-up.

The repeated starts (300 units on 3 nodes, 1,000 on 10) each follow the same number of units started by systemd
alone on the same nodes (``bench.scenarios.floor``): the floor under that start at that moment.

Failover runs on a cluster of its own whose engine lease TTL (5 x engine_reconcile_interval) is below agent_ttl,
as with fleet's defaults (10 s lease, 30 s agent TTL): with the 3 s agent TTL used here and the default 2 s
interval, a dead leader's 10 s lease, not the machine's TTL, would decide when its units move. Each failover
figure notes whether the victim was the engine leader, and the load average.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.common import Figure, calibration, stopwatch, wait_quiet, wait_until
from bench.observer import Observer
from bench.scenarios import floor
from fleetpy.lab import Lab
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry

FLEETPY = str(Path(sys.executable).parent / "fleetpy")
SLEEPER = "[Unit]\nDescription=Sleeper %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"
TTL = 3
FAILOVER_ENV = {"FLEET_ENGINE_RECONCILE_INTERVAL": "0.4"}  # lease TTL 5 x 0.4 = 2 s < TTL


class Cluster:
    def __init__(self, nodes: int, tag: str, agent_env: dict[str, str] | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="fleetpy-bench-")
        self.lab = Lab(f"b{tag}{os.getpid() % 10000}", self.dir)
        self.lab.up(nodes=nodes, agents=True, agent_ttl=f"{TTL}s", agent_env=agent_env)
        self.env = {**os.environ, **self.lab.env()}
        self.store = EtcdStore(self.lab.etcd_endpoints, timeout=10)
        self.registry = Registry(self.store)
        if not wait_until(lambda: len(self.registry.machines()) == nodes, 30):
            raise RuntimeError(f"only {len(self.registry.machines())} of {nodes} agents registered")
        unit_dir = Path(self.dir) / "units"
        unit_dir.mkdir()
        (unit_dir / "sleeper@.service").write_text(SLEEPER)
        self.units = unit_dir
        self.observer = Observer(self.registry)

    def fleetpy(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([FLEETPY, *args], env=self.env, cwd=self.units, text=True, capture_output=True)

    def active(self, names: set[str]) -> int:
        return self.observer.active(names)

    def none_left(self, names: set[str]) -> bool:
        return self.observer.none_left(names)

    def scheduled(self, names: set[str]) -> int:
        return self.observer.scheduled(names)

    def close(self) -> None:
        self.observer.close()
        self.registry.store.close()
        self.lab.down()


def etcd_requests(lab: Lab) -> float:
    total = 0.0
    with urllib.request.urlopen(lab.etcd_endpoints[0] + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("etcd_http_received_total"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def agent_cpu_seconds(lab: Lab) -> float:
    total = 0.0
    for node in lab.nodes:
        out = lab.exec(node, ["systemctl", "show", "-p", "CPUUsageNSec", "--value", "fleetpyd.service"]).stdout
        total += int(out.strip()) / 1e9 if out.strip().isdigit() else 0.0
    return total


def latency(c: Cluster, runs: int) -> list[Figure]:
    system, cli, inproc = [], [], []
    template = UnitFile.parse(SLEEPER)
    for i in range(runs):
        name = f"sleeper@api{i}.service"
        with stopwatch() as t:  # what `start --no-block` writes, from a client that is already running
            c.registry.create_unit(Unit(name, template, JobState.LAUNCHED))
            wait_until(lambda n=name: c.active({n}) == 1, 30, 0.005)  # type: ignore[misc]
        inproc.append(t())
        name = f"sleeper@lat{i}.service"
        with stopwatch() as t:
            proc = c.fleetpy("start", "--no-block", name)
            assert proc.returncode == 0, proc.stderr
            wait_until(lambda n=name: c.active({n}) == 1, 30, 0.01)  # type: ignore[misc]
        system.append(t())
        name = f"sleeper@blk{i}.service"
        with stopwatch() as t:
            proc = c.fleetpy("start", name)  # blocking, as a user types it
        cli.append(t())
    c.fleetpy("destroy", *[f"sleeper@{k}{i}.service" for k in ("lat", "blk", "api") for i in range(runs)])
    return [
        Figure("cluster", "1 unit: registry write -> active running (3 nodes)", "s", inproc,
               reference="2.9-3.0 s", target="< 0.3 s p50", target_value=0.3,
               note="a running client (API, script): schedule + agent load/start + state published"),
        Figure("cluster", "1 unit: `start --no-block` -> active running (3 nodes)", "s", system,
               reference="2.9-3.0 s", note="includes the CLI process's start-up"),
        Figure("cluster", "1 unit: blocking `fleetpy start` returns (3 nodes)", "s", cli, reference="2.9-3.0 s"),
    ]


def throughput(c: Cluster, count: int, nodes: int, reference: str, target: float | None) -> list[Figure]:
    names = [f"sleeper@{i}.service" for i in range(1, count + 1)]
    speed = calibration()
    cpu0, etcd0 = agent_cpu_seconds(c.lab), etcd_requests(c.lab)
    with stopwatch() as t:
        proc = c.fleetpy("start", "--no-block", *names)
        assert proc.returncode == 0, proc.stderr[-500:]
        ok = wait_until(lambda: c.active(set(names)) == count, 120, 0.05)
    up = t()
    cpu = agent_cpu_seconds(c.lab) - cpu0
    requests = etcd_requests(c.lab) - etcd0
    figures = [Figure("cluster", f"{count} units -> all active ({nodes} nodes)", "s", [up], reference=reference,
                      target=f"< {target} s" if target else "", target_value=target,
                      note="" if ok else f"only {c.active(set(names))} active after 120 s",
                      extra={"agent_cpu_s": cpu, "etcd_requests": requests}),
               Figure("cluster", f"fleetpyd CPU (all nodes) while starting {count} units", "CPU-s", [cpu]),
               Figure("cluster", f"etcd requests while starting {count} units", "req", [requests]),
               Figure("cluster", f"machine speed before each {count}-unit start: 3 M Python additions", "s", [speed],
                      note="the CPU of a start rises and falls with it (bench.common.calibration)")]
    return figures


def repeated(c: Cluster, count: int, nodes: int, reference: str, target: float, *, runs: int) -> list[Figure]:
    """``throughput`` ``runs`` times (a destroy between two), one figure each with every run's sample: on two
    cores one run varies by +-20%. Before each, the same number of units started by systemd alone (``floor``), so
    that each start can be read against the machine's speed for this very work. The units of the last run stay
    (for the idle figures)."""
    figures: list[Figure] = []
    alone: list[float] = []
    floor.install(c.lab)
    for run in range(runs):
        alone.append(floor.systemd_alone(c.lab, count))
        wait_quiet()
        figures += throughput(c, count, nodes, reference, target)
        if run < runs - 1:
            figures += destroy(c, count)
            wait_quiet()
    return merge_same([floor.figure(c.lab, count, alone), *figures])


def merge_same(figures: list[Figure]) -> list[Figure]:
    """Figures of the same name as one, with all their samples (in the place of the first)."""
    merged: dict[str, Figure] = {}
    for figure in figures:
        if figure.name in merged:
            merged[figure.name].samples.extend(figure.samples)
        else:
            merged[figure.name] = figure
    return list(merged.values())


def scheduling_burst(c: Cluster, count: int, runs: int) -> list[Figure]:
    """``start --no-block`` of ``count`` new units: time until every one has a target (the engine's part, with
    the CLI's writes and the agents starting the first units on the same two cores), then until all are active."""
    (c.units / "burst@.service").write_text(SLEEPER)
    c.observer.follow_jobs()  # before the clock starts
    times = [_burst(c, [f"burst@{run}x{i}.service" for i in range(count)]) for run in range(runs)]
    return [Figure("cluster", f"{count} units: `start --no-block` -> all scheduled (3 nodes)", "s",
                   [scheduled for scheduled, _ in times], target="< 3 s", target_value=3.0 if count == 1000 else None,
                   reference="fleet's README: at most 1,000 units; etcd overload seen at ~500",
                   note="from the CLI's start until every unit has a target"),
            Figure("cluster", f"{count} units: `start --no-block` -> all active (3 nodes)", "s",
                   [active for _, active in times])]


def _burst(c: Cluster, names: list[str]) -> tuple[float, float]:
    wanted = set(names)

    with stopwatch() as t:
        proc = subprocess.Popen([FLEETPY, "start", "--no-block", *names], env=c.env, cwd=c.units,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ok = wait_until(lambda: c.scheduled(wanted) == len(names), 120, 0.01)
        scheduled = t()
        _, err = proc.communicate()
        assert proc.returncode == 0, err[-500:]
        ok = wait_until(lambda: c.active(wanted) == len(names), 120, 0.05) and ok
        active = t()
    assert ok, f"not all of {len(names)} units scheduled and active after 120 s"
    c.fleetpy("destroy", *names)
    wait_until(lambda: c.none_left(wanted), 120, 0.1)
    return scheduled, active


def idle_cost(c: Cluster, count: int, nodes: int, window: float) -> list[Figure]:
    time.sleep(2)
    cpu0, etcd0 = agent_cpu_seconds(c.lab), etcd_requests(c.lab)
    own0 = c.store.requests  # the bench's observer watches too: its requests are not the cluster's
    time.sleep(window)
    per_min = (etcd_requests(c.lab) - etcd0 - (c.store.requests - own0)) * 60 / window
    cpu = (agent_cpu_seconds(c.lab) - cpu0) * 60 / window
    ref = "2,335 at 300 units (3 nodes); 10,291 at 1,000 units (10 nodes)"
    return [Figure("cluster", f"idle etcd requests/min, {count} units, {nodes} nodes", "req/min", [per_min],
                   reference=ref, target="O(machines), not O(units)"),
            Figure("cluster", f"idle fleetpyd CPU per 60 s (all nodes), {count} units", "CPU-s", [cpu],
                   reference="leader alone: 4.1-4.3 s at 300 units")]


def destroy(c: Cluster, count: int) -> list[Figure]:
    names = [f"sleeper@{i}.service" for i in range(1, count + 1)]
    with stopwatch() as t:
        proc = c.fleetpy("destroy", *names)
        assert proc.returncode == 0, proc.stderr[-500:]
        ok = wait_until(lambda: c.none_left(set(names)), 120, 0.05)
    return [Figure("cluster", f"destroy {count} units -> gone from systemd and list-units", "s", [t()],
                   reference="495 s (300 units)", target="< 3 s (300 units)",
                   target_value=3.0 if count <= 300 else None,
                   note="" if ok else "not all gone after 120 s")]


def failover(c: Cluster, count: int, how: str, runs: int) -> list[Figure]:
    """``runs`` faults of the node running most of ``count`` units (the victim is back and registered before the
    next): when the fault lands in the victim's heartbeat period decides most of a kill's time (its key expires
    agent_ttl after its last refresh, 0-1.5 s before the kill), so one sample says little."""
    samples: list[float] = []
    led = moved_counts = 0
    missed = []
    for _ in range(runs):
        elapsed, victim_led, moving, ok = _failover_once(c, count, how)
        samples.append(elapsed)
        led += victim_led
        moved_counts += moving
        if not ok:
            missed.append(f"{elapsed:.1f} s")
    ref = "3.5 s" if how == "poweroff" else "TTL + 1-3 s (27-31 s with TTL 30 s)"
    target = 1.0 if how == "poweroff" else TTL + 0.5
    load = os.getloadavg()[0]
    note = (f"{runs} runs, {moved_counts / runs:.0f} units moved per run; the victim led the engine in {led}; "
            f"load {load:.1f}")
    if missed:
        note += f"; not all moved within 60 s in {len(missed)}"
    return [Figure("cluster", f"node {how} -> its units active elsewhere ({count} units, 3 nodes, agent_ttl {TTL}s)",
                   "s", samples, reference=ref, target=f"< {target} s", target_value=target, note=note,
                   extra={"victim_led_runs": led, "load1": load})]


def _failover_once(c: Cluster, count: int, how: str) -> tuple[float, bool, int, bool]:
    """One fault: (seconds until the victim's units are active elsewhere, whether it led, how many, all moved)."""
    names = [f"mover@{i}.service" for i in range(count)]
    (c.units / "mover@.service").write_text(SLEEPER)
    c.fleetpy("start", "--no-block", *names)
    wait_until(lambda: c.active(set(names)) == count, 60, 0.05)
    by_node: dict[str, int] = {}
    for s in c.registry.unit_states():
        if s.name in names:
            by_node[s.machine_id] = by_node.get(s.machine_id, 0) + 1
    victim_id = max(by_node, key=lambda m: by_node[m])
    victim = next(n for n in c.lab.nodes if c.lab.machine_id(n) == victim_id)
    lease = c.registry.lease()
    led = lease is not None and lease.machine_id == victim_id
    moving = {s.name for s in c.registry.unit_states() if s.name in names and s.machine_id == victim_id}

    def moved() -> bool:
        return sum(1 for s in c.registry.unit_states() if s.name in moving and s.machine_id != victim_id
                   and s.active_state == "active") == len(moving)

    # the fault runs beside the stopwatch: a clean poweroff returns only once the node is down, which may be
    # after its units run elsewhere (what is measured)
    fault = threading.Thread(target=c.lab.poweroff if how == "poweroff" else c.lab.kill, args=(victim,))
    with stopwatch() as t:
        fault.start()
        ok = wait_until(moved, 60, 0.02)
    elapsed = t()
    fault.join()
    c.lab.start(victim)
    c.fleetpy("destroy", *names)
    wait_until(lambda: c.none_left(set(names)), 60, 0.1)
    wait_until(lambda: len(c.registry.machines()) == len(c.lab.nodes), 30, 0.1)
    return elapsed, led, len(moving), ok


def run(quick: bool) -> list[Figure]:
    figures: list[Figure] = []
    c = Cluster(3, "c")
    try:
        figures += latency(c, 5 if quick else 20)
        figures += throughput(c, 100, 3, "4.0-4.1 s", None)
        figures += destroy(c, 100)
        if not quick:
            figures += repeated(c, 300, 3, "5.0-5.6 s", 1.5, runs=5)
            figures += idle_cost(c, 300, 3, 60)
            figures += destroy(c, 300)
            figures += scheduling_burst(c, 1000, 3)
    finally:
        c.close()
    c = Cluster(3, "f", FAILOVER_ENV)
    try:
        figures += failover(c, 30 if quick else 100, "poweroff", 1 if quick else 5)
        figures += failover(c, 30 if quick else 100, "kill", 1 if quick else 5)
    finally:
        c.close()
    if not quick:
        c = Cluster(10, "t")
        try:
            figures += repeated(c, 1000, 10, "18.1-31.4 s", 5.0, runs=5)  # one run varies by +-15% on two cores
            figures += idle_cost(c, 1000, 10, 60)
            figures += destroy(c, 1000)
        finally:
            c.close()
    return merge_same(figures)
