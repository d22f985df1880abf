"""Scale by simulation: 1,000 machines (quick: 100), each a real fleetpyd built by ``fleetpy.daemon.server.build``
with the fake systemd, in a few processes (``bench.sim.worker``) sharing ONE real etcd, and 10,000 template units
(quick: 1,000): time to schedule them all, to see them all active, a global unit reaching every machine, idle
etcd requests per minute, and memory of the engine leader's process and of each worker.

The engine runs on 3 machines, each alone in its own unmodified fleetpyd process (the leader's process is one
fleetpyd: its agent and the engine), not niced; the other machines run 250 per worker process with the engine
disabled, niced, with a 50 ms GIL switch interval (with CPython's default 5 ms, 250 agents per process spent
~0.5 core each in futex wake-ups when the machine was busy, starving etcd); what the workers share is said in
``bench.sim.worker``. etcd stands for a dedicated host: as root, its scheduler autogroup gets nice -10 (without
it, on 2 busy cores its raft loop waited for CPU, WAL fsyncs took 30-100 ms and writes timed out). Progress is
followed from watch streams of ``job/`` and ``states/`` in the bench's process (``bench.observer``, checked every
0.1 s). Until the fifth round of bench/PROFILING.md the bench read the whole tree every 2 s instead; each 3-5 MB
read held etcd's v2 store lock while 1,000 machines were writing. The machine's load average is noted with each
timing: on 2 cores, other work running at the same time shows.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, stopwatch, wait_until
from bench.observer import Observer
from bench.sim import probe
from bench.sim.worker import machine_id
from fleetpy.errors import RegistryError
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from fleetpy.testing import EtcdServer

PREFIX = "/sim/"
ENGINES = 3
PER_WORKER = 250
SERVICE = "[Service]\nExecStart=/bin/sleep infinity\n"
TEMPLATES = {  # name -> (share of the units, body): mostly plain, some metadata, some conflicts
    "plain": (0.80, f"[Unit]\nDescription=Plain %i\n\n{SERVICE}"),
    "db": (0.10, f"[Unit]\nDescription=DB %i\n\n{SERVICE}\n[X-Fleet]\nMachineMetadata=role=db\n"),
    "web": (0.05, f"[Unit]\nDescription=Web %i\n\n{SERVICE}\n[X-Fleet]\nMachineMetadata=role=web\n"
                  "MachineMetadata=region=eu\n"),
    "spread": (0.05, f"[Unit]\nDescription=Spread %i\n\n{SERVICE}\n[X-Fleet]\nConflicts=spread@*.service\n"),
}
GLOBAL = f"[Unit]\nDescription=Everywhere\n\n{SERVICE}\n[X-Fleet]\nGlobal=true\n"


def unit_mix(n: int) -> list[Unit]:
    """``n`` template instances in the proportions of TEMPLATES, interleaved (every 20th unit a db one...)."""
    files = {name: UnitFile.parse(body) for name, (_, body) in TEMPLATES.items()}
    pattern = [name for name, (share, _) in TEMPLATES.items() for _ in range(round(share * 20))]
    return [Unit(f"{pattern[i % len(pattern)]}@{i}.service", files[pattern[i % len(pattern)]], JobState.LAUNCHED)
            for i in range(n)]


class Simulation:
    """etcd + the engine processes + the worker processes; ``close`` kills them (no purge) and drops etcd."""

    def __init__(self, machines: int, per_worker: int = PER_WORKER) -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # etcd inherits it: ~10 connections per agent
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.machines = machines
        self.dir = tempfile.mkdtemp(prefix="fleetpy-sim-")
        self.etcd = EtcdServer(name="bench-sim").start()
        self.url = self.etcd.url
        self.boosted = self.etcd.proc is not None and probe.boost(self.etcd.proc.pid)
        self.registry = Registry(EtcdStore(self.url, timeout=30), PREFIX)
        self.procs: list[tuple[str, subprocess.Popen[str], int, dict[str, Any]]] = []  # (role, proc, agents, hello)
        self.engine_pid: dict[str, int] = {}  # machine id -> pid of its process
        try:
            for i in range(ENGINES):
                self._spawn("engine", i, 1, engine=True)
                self.engine_pid[machine_id(i)] = self.procs[-1][1].pid
            first = ENGINES
            while first < machines:
                count = min(per_worker, machines - first)
                self._spawn("worker", first, count, engine=False)
                first += count
        except BaseException:
            self.close()
            raise

    def _spawn(self, role: str, first: int, count: int, *, engine: bool) -> None:
        argv = [sys.executable, "-m", "bench.sim.worker", "--endpoint", self.url, "--prefix", PREFIX,
                "--first", str(first), "--count", str(count), "--log", f"{self.dir}/{role}-{first}.log"]
        argv += ["--engine", "--log-level", os.environ.get("SIM_ENGINE_LOG", "WARNING")] if engine else [
            "--nice", "10", "--switch-interval", "0.05"]
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append((role, proc, count, {}))
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError(f"{role} process {first} exited: {self.log_tail()}")
        self.procs[-1][3].update(json.loads(line))

    def workers(self) -> list[tuple[subprocess.Popen[str], int, dict[str, Any]]]:
        return [(p, n, hello) for role, p, n, hello in self.procs if role == "worker"]

    def log_tail(self) -> str:
        tails = []
        for path in sorted(Path(self.dir).glob("*.log")):
            text = path.read_text(errors="replace").strip()
            if text:
                tails.append(f"{path.name}: ...{text[-400:]}")
        return "\n".join(tails) or "(no warnings logged)"

    def leader_pid(self) -> tuple[str, int | None]:
        lease = self.registry.lease()
        holder = lease.machine_id if lease is not None else ""
        return holder, self.engine_pid.get(holder)

    def cpu(self) -> float:
        return sum(probe.cpu_seconds(p.pid) for _, p, _, _ in self.procs)

    def close(self) -> None:
        for _, proc, _, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            if proc.stdin:
                proc.stdin.close()
            if proc.stdout:
                proc.stdout.close()
        self.registry.store.close()
        self.etcd.cleanup()
        if not os.environ.get("SIM_KEEP_LOGS"):  # debugging: SIM_KEEP_LOGS=1 SIM_ENGINE_LOG=INFO python -m bench ...
            shutil.rmtree(self.dir, ignore_errors=True)


def poll(predicate: Callable[[], bool], timeout: float, interval: float) -> tuple[bool, float]:
    """Wait for ``predicate`` (checked every ``interval`` s); (reached, seconds waited)."""
    with stopwatch() as elapsed:
        ok = wait_until(predicate, timeout, interval)
    return ok, elapsed()


def submit(registry: Registry, units: list[Unit]) -> tuple[float, int]:
    """Write every unit (body, job object, target state: fleet's ``start --no-block``) from 16 threads; a write
    etcd refuses under load (``request timed out``) is retried (the writes are idempotent). (seconds, retries)"""
    retries = []

    def create(unit: Unit) -> None:
        for attempt in range(5):
            try:
                registry.create_unit(unit)
                return
            except RegistryError:
                if attempt == 4:
                    raise
                retries.append(unit.name)
                time.sleep(0.5)

    with stopwatch() as elapsed, ThreadPoolExecutor(16) as pool:
        list(pool.map(create, units))
    return elapsed(), len(retries)


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def idle_rate(url: str, window: float) -> tuple[float, dict[str, float]]:
    before = probe.etcd_requests(url)
    time.sleep(window)
    after = probe.etcd_requests(url)
    per_min = {k: (after[k] - before[k]) * 60 / window for k in after}
    return per_min.get("total", 0.0), per_min


def run(quick: bool) -> list[Figure]:
    machines, n_units = (100, 1_000) if quick else (1_000, 10_000)
    idle0_window, idle_window = (15.0, 24.0) if quick else (30.0, 60.0)  # >= one TTL-refresh period (24 s)
    limit = 60.0 if quick else 300.0
    size = f"{n_units} units / {machines} machines"
    sim = Simulation(machines)
    try:
        if not wait_until(lambda: len(sim.registry.machines()) == machines, limit, 0.25):
            raise RuntimeError(f"{len(sim.registry.machines())} of {machines} machines registered\n{sim.log_tail()}")
        time.sleep(2.0)
        idle0, _ = idle_rate(sim.url, idle0_window)
        figures = scale(sim, unit_mix(n_units), size, limit)
        time.sleep(5.0)
        idle, by_method = idle_rate(sim.url, idle_window)
        split = ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_method.items()) if k != "total" and v)
        figures.append(Figure(
            "simulation", f"idle etcd requests/min, {size}", "req/min", [idle],
            reference="~7.5 x units + 110 x machines (fleet 7.1): ~185,000 here" if not quick else "",
            target="O(machines), not O(units)",
            note=(f"{split}; {idle0:.0f}/min with the same machines and no unit; {len(sim.workers())} job-tree "
                  "watches (one per worker process) instead of one per machine")))
        figures += memory(sim, n_units)
    finally:
        sim.close()
    return figures


def scale(sim: Simulation, units: list[Unit], size: str, limit: float) -> list[Figure]:
    """Submit ``units``, wait until all are scheduled and active, then start a global unit."""
    store = EtcdStore(sim.url, timeout=30)
    observer = Observer(Registry(store, PREFIX))
    observer.follow_jobs()
    try:
        return _scale(sim, units, {u.name for u in units}, size, limit, observer)
    finally:
        observer.close()
        store.close()


def _scale(sim: Simulation, units: list[Unit], names: set[str], size: str, limit: float,
           observer: Observer) -> list[Figure]:
    n, machines = len(units), sim.machines
    cpu0, req0, fsync0 = sim.cpu(), probe.etcd_requests(sim.url)["total"], probe.etcd_fsync(sim.url)
    written, retries = submit(sim.registry, units)
    busy = load()
    scheduled, t_sched = poll(lambda: observer.scheduled(names) == n, limit, 0.1)
    got = observer.scheduled(names)
    active, t_active = poll(lambda: observer.active(names) == n, limit, 0.1)
    up = observer.active(names)
    cpu, requests = sim.cpu() - cpu0, probe.etcd_requests(sim.url)["total"] - req0
    fsync = [b - a for a, b in zip(fsync0, probe.etcd_fsync(sim.url), strict=True)]
    figures = [
        Figure("simulation", f"schedule {size}: last submit -> every unit has a target", "s", [t_sched],
               reference="no figure; fleet: 500+ machines and 500+ units overloaded etcd (#1264)",
               target="< 30 s (1,000 machines)", target_value=30.0,
               note=(f"{n} units written in {written:.1f} s by 16 client threads (3 requests each"
                     f"{f', {retries} retried after etcd timeouts' if retries else ''}); "
                     f"{'all' if scheduled else f'only {got}'} scheduled; {busy} at the last submit")),
        Figure("simulation", f"{size}: last submit -> all active (states/)", "s", [t_sched + t_active],
               reference="1,000 units on 10 nodes: 18.1-31.4 s",
               note=(f"{'all' if active else f'only {up}'} active; {requests:.0f} etcd requests and {cpu:.0f} "
                     f"CPU-s (all fleetpy processes) from the first submit; etcd WAL fsync "
                     f"{1000 * fsync[0] / max(1, fsync[1]):.1f} ms on average ({fsync[1]:.0f}); {load()} at the end")),
    ]
    sim.registry.create_unit(Unit("everywhere.service", UnitFile.parse(GLOBAL), JobState.LAUNCHED))

    def reached() -> int:
        return observer.machines_active("everywhere.service")

    everywhere, t_global = poll(lambda: reached() == machines, limit, 0.1)
    figures.append(Figure(
        "simulation", f"global unit -> active on all {machines} machines ({size})", "s", [t_global],
        reference="700 nodes: only ~400-500 reached per attempt (#1579); 10 nodes: 5.1-7.2 s",
        target="< 15 s (1,000 machines)", target_value=15.0,
        note=("" if everywhere else f"only {reached()} of {machines} after {limit:.0f} s; ") + load()))
    return figures


def memory(sim: Simulation, n_units: int) -> list[Figure]:
    holder, pid = sim.leader_pid()
    figures = []
    if pid is not None:
        status = probe.proc_status(pid)
        figures.append(Figure("simulation", f"RSS of the engine leader's process ({n_units} units)", "MiB",
                              [status["VmRSS"] / 1024], note=f"one fleetpyd: its agent and the leading engine "
                              f"(machine {holder[:8]}), {status['Threads']} threads"))
    rows = [(probe.proc_status(p.pid), n, hello) for p, n, hello in sim.workers()]
    per_agent = [(s["VmRSS"] - hello["base_rss_kib"]) / 1024 / n for s, n, hello in rows]
    threads = sorted({s["Threads"] for s, _, _ in rows})
    agents = sorted({n for _, n, _ in rows})
    figures += [
        Figure("simulation", f"RSS per worker process ({'/'.join(map(str, agents))} agents, {n_units} units)",
               "MiB", [s["VmRSS"] / 1024 for s, _, _ in rows],
               note=f"{'/'.join(map(str, threads))} threads per worker (6 per agent)"),
        Figure("simulation", f"RSS per simulated agent ({n_units} units)", "MiB", per_agent,
               note="(worker RSS - its RSS before building agents) / agents; the job tree is shared per process"),
    ]
    return figures
