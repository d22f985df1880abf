"""What ran where: a harness for the fault tests, over a lab whose every node runs fleetpyd (agent + engine).

Two views are kept apart on purpose. The *registry* view is what fleetpy says (``states/``, ``job/<u>/target``,
the engine lease). The *systemd* view is the truth: ``systemctl show -p Id,ActiveState,MainPID`` inside each
running node (``lab.exec``), which is how restarts (a MainPID that changed) and duplicates (one unit active on two
nodes at once) are detected. ``Sampler`` polls the systemd view in the background and measures the longest window
during which any unit was active on two nodes; ``TargetLog`` follows ``job/`` through a watch (``TreeCache``) and
records every change of every ``job/<u>/target``, so a test can say that a unit moved exactly once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from fleetpy.errors import FleetError, LabError
from fleetpy.lab import Lab
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.keys import DEFAULT_PREFIX, Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Event

RUNNING = ("loaded", "active", "running")
# Timing of every fault lab: short TTLs so that a machine loss is noticed in seconds, not in fleet's 30 s.
AGENT_TTL = 5  # seconds: machine, state and heartbeat TTL
RECONCILE = 0.5  # engine_reconcile_interval: lease TTL ceil(5 x 0.5) = 3 s
LEASE_TTL = 3
FLEET_ENV = {"FLEET_ENGINE_RECONCILE_INTERVAL": str(RECONCILE)}
TIMEOUT = 30.0  # generous bound for anything that should take a few seconds on a loaded 2-core machine

Where = dict[str, dict[str, int]]  # unit -> {node: MainPID} for the nodes where systemd has it active


def lab_kwargs(**extra: object) -> dict[str, object]:
    """``lab_factory`` arguments of every fault lab: 3 nodes, agents with short TTLs."""
    return {"nodes": 3, "agents": True, "agent_ttl": f"{AGENT_TTL}s", "agent_env": dict(FLEET_ENV), **extra}


def wait_for(what: str, predicate: Callable[[], object], timeout: float = TIMEOUT, step: float = 0.1,
             explain: Callable[[], str] | None = None) -> float:
    """Poll until ``predicate`` is true; the seconds it took. Registry errors count as "not yet". On a timeout
    the assertion message ends with ``explain()`` (what the cluster looked like)."""
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except FleetError:
            pass
        if time.monotonic() - started >= timeout:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(step)


def fleetpy(lab: Lab, *args: str, cwd: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed ``fleetpy`` script pointed at the lab (``lab.env()``), as a user runs it."""
    script = os.path.join(os.path.dirname(sys.executable), "fleetpy")
    return subprocess.run([script, *args], capture_output=True, text=True, env={**os.environ, **lab.env()}, cwd=cwd,
                          timeout=timeout, check=False)


def body(exec_start: str = "/bin/sleep 100000", xfleet: str = "") -> UnitFile:
    text = f"[Unit]\nDescription=reliability test\n[Service]\nExecStart={exec_start}\n"
    return UnitFile.parse(text + (f"[X-Fleet]\n{xfleet}\n" if xfleet else ""))


class Fleet:
    """A lab with agents on every node, seen through the registry and through each node's systemd."""

    def __init__(self, lab: Lab, prefix: str = DEFAULT_PREFIX) -> None:
        self.lab = lab
        self.prefix = prefix
        self.store = EtcdStore(lab.etcd_endpoints, timeout=2.0)
        self.registry = Registry(self.store, prefix)
        self.ids = {node: lab.machine_id(node) for node in lab.nodes}
        self.nodes = {mid: node for node, mid in self.ids.items()}

    def close(self) -> None:
        self.store.close()

    # -- registry view ----------------------------------------------------------------------------------------
    def machines(self) -> set[str]:
        return {self.nodes.get(m.id, m.id) for m in self.registry.machines()}

    def wait_machines(self, nodes: Iterable[str] | None = None, timeout: float = TIMEOUT) -> float:
        wanted = set(self.lab.nodes if nodes is None else nodes)
        return wait_for(f"machines {sorted(wanted)}", lambda: self.machines() == wanted, timeout)

    def start(self, names: Iterable[str], unit_file: UnitFile | None = None) -> None:
        """What ``fleetpy start --no-block`` writes: the body, the job object, target state launched."""
        for name in names:
            self.registry.create_unit(Unit(name, unit_file or body(), JobState.LAUNCHED))

    def targets(self) -> dict[str, str | None]:
        return {s.name: self.nodes.get(s.target_machine or "", s.target_machine) for s in self.registry.schedule()}

    def placement(self) -> dict[str, str]:
        """unit -> node, for units the registry shows running on the machine they are scheduled to."""
        targets = {s.name: s.target_machine for s in self.registry.schedule()}
        return {s.name: self.nodes.get(s.machine_id, s.machine_id) for s in self.registry.unit_states()
                if (s.load_state, s.active_state, s.sub_state) == RUNNING and targets.get(s.name) == s.machine_id}

    def wait_placed(self, names: Iterable[str], timeout: float = TIMEOUT) -> dict[str, str]:
        wanted = set(names)
        wait_for(f"{len(wanted)} units active", lambda: wanted <= set(self.placement()), timeout)
        return {n: w for n, w in self.placement().items() if n in wanted}

    def leader(self) -> str | None:
        lease = self.registry.lease()
        return self.nodes.get(lease.machine_id) if lease is not None else None

    def job_tree(self) -> dict[str, str]:
        """Every key and value under ``job/`` and ``unit/`` (the unit bodies) except the ``job-state`` heartbeats
        (agents set and clear them): what the users wrote and the engine decided, which no fault may lose."""
        nodes = [*self.registry.listing(Tree.JOB).nodes, *self.registry.listing(Tree.UNIT).nodes]
        return {n.key: n.value or "" for n in nodes if not n.key.endswith("/job-state")}

    # -- systemd view -----------------------------------------------------------------------------------------
    def systemd(self, node: str, names: Iterable[str]) -> dict[str, tuple[str, int]]:
        """name -> (ActiveState, MainPID) as the node's systemd sees it. Raises LabError when the node is off."""
        names = sorted(names)
        proc = self.lab.exec(node, ["systemctl", "show", "-p", "Id,ActiveState,MainPID", "--", *names], timeout=30)
        if proc.returncode != 0:
            raise LabError(f"{node}: systemctl show exited {proc.returncode}: {proc.stderr.strip()}")
        out: dict[str, tuple[str, int]] = {}
        for block in proc.stdout.strip().split("\n\n"):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if props.get("Id"):
                out[props["Id"]] = (props.get("ActiveState", ""), int(props.get("MainPID") or 0))
        return out

    def where(self, names: Iterable[str], nodes: Iterable[str] | None = None) -> Where:
        """unit -> {node: MainPID} over the running nodes: where systemd really runs each unit."""
        names = sorted(names)
        out: Where = {n: {} for n in names}
        for node in (self.lab.nodes if nodes is None else nodes):
            if self.lab.node_pid(node) is None:
                continue
            try:
                view = self.systemd(node, names)
            except (LabError, subprocess.SubprocessError):
                continue  # the node went down meanwhile
            for name, (active, pid) in view.items():
                if active in ("active", "reloading", "deactivating") and name in out:
                    out[name][node] = pid
        return out

    def pids(self, names: Iterable[str]) -> dict[str, tuple[str, int]]:
        """unit -> (node, MainPID) for units active on exactly one node (asserts there is no duplicate)."""
        where = self.where(names)
        dups = {n: w for n, w in where.items() if len(w) > 1}
        assert not dups, f"units active on two nodes: {dups}"
        return {n: next(iter(w.items())) for n, w in where.items() if w}

    def diagnose(self, names: Iterable[str]) -> str:
        """What the registry and the agents say, for a failure message: counts, a few stragglers, log warnings."""
        names = sorted(names)
        placed = self.placement()
        targets = self.targets()
        stragglers = [n for n in names if n not in placed][:5]
        states = {(s.name, self.nodes.get(s.machine_id, s.machine_id)): s.active_state
                  for s in self.registry.unit_states() if s.name in stragglers}
        out = [f"placed {len(set(placed) & set(names))}/{len(names)}; machines {sorted(self.machines())}; "
               f"leader {self.leader()}; stragglers {[(n, targets.get(n)) for n in stragglers]}; states {states}; "
               f"reasons {dict(list(self.registry.reasons().items())[:5])}"]
        for node in self.lab.nodes:
            if self.lab.node_pid(node) is None:
                continue
            lines = self.journal(node).splitlines()
            notable = [line for line in lines if "WARNING" in line or "ERROR" in line or "failed" in line]
            out.append(f"{node}: {len(lines)} log lines; last warnings: " + " | ".join(notable[-8:]))
            out.extend(f"  {line}" for line in lines if any(f"={n} " in line or f" {n} " in line for n in stragglers))
        return "\n".join(out)

    def journal(self, node: str, unit: str = "fleetpyd.service") -> str:
        return self.lab.exec(node, ["journalctl", "-u", unit, "--no-pager", "-o", "cat"], timeout=30).stdout


@dataclass
class Sampler:
    """Polls the systemd view of ``names`` on every node in the background (``with Sampler(...) as s:``)."""

    fleet: Fleet
    names: list[str]
    period: float = 0.2
    samples: list[tuple[float, Where]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            taken = time.monotonic()
            where = self.fleet.where(self.names)
            self.samples.append((taken, where))
            self._stop.wait(max(0.0, self.period - (time.monotonic() - taken)))

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def duplicates(self, since: float = float("-inf")) -> dict[str, float]:
        """unit -> the longest stretch (s) during which it was active on two or more nodes, from the first
        sample that showed two copies to the first that showed at most one (the open end counts to the last)."""
        longest: dict[str, float] = {}
        opened: dict[str, float] = {}
        last = since
        for taken, where in self.samples:
            if taken < since:
                continue
            last = taken
            for name, nodes in where.items():
                if len(nodes) > 1:
                    opened.setdefault(name, taken)
                elif name in opened:
                    longest[name] = max(longest.get(name, 0.0), taken - opened.pop(name))
        for name, began in opened.items():
            longest[name] = max(longest.get(name, 0.0), last - began)
        return longest

    def restarts(self) -> dict[str, list[tuple[str, int, int]]]:
        """unit -> [(node, old MainPID, new MainPID)] for every node where the unit stayed active between two
        samples but its MainPID changed (a restart systemd did not show as inactive in between)."""
        out: dict[str, list[tuple[str, int, int]]] = {}
        for (_, before), (_, after) in zip(self.samples, self.samples[1:], strict=False):
            for name, nodes in after.items():
                for node, pid in nodes.items():
                    old = before.get(name, {}).get(node)
                    if old is not None and old != pid:
                        out.setdefault(name, []).append((node, old, pid))
        return out

    def copies(self) -> dict[str, set[str]]:
        """unit -> every node it was ever seen active on."""
        out: dict[str, set[str]] = {}
        for _, where in self.samples:
            for name, nodes in where.items():
                out.setdefault(name, set()).update(nodes)
        return out


@dataclass
class TargetLog:
    """Every change of ``job/<u>/target`` as the watch delivers it: (time, unit, node or None for a removal)."""

    fleet: Fleet
    changes: list[tuple[float, str, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _cache: TreeCache | None = None

    def _on_change(self, event: Event | None) -> None:
        if event is None:
            return
        parts = self.fleet.registry.keys.split(event.node.key)
        if len(parts) == 3 and parts[2] == "target":
            value = None if event.action.removes else event.node.value
            self.changes.append((time.monotonic(), parts[1], self.fleet.nodes.get(value or "", value)))

    def __enter__(self) -> TargetLog:
        store = EtcdStore(self.fleet.lab.etcd_endpoints, timeout=2.0)
        self._cache = TreeCache(store, self.fleet.registry.keys.tree(Tree.JOB), on_change=self._on_change,
                                watch_timeout=2.0)
        self._cache.reload()
        self._thread = threading.Thread(target=self._cache.run, args=(self._stop,), kwargs={"error_pause": 0.2},
                                        daemon=True, name="targets")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._cache is not None:
            self._cache.store.close()  # type: ignore[attr-defined]

    def of(self, name: str) -> list[str | None]:
        return [node for _, unit, node in self.changes if unit == name]

    def moves(self) -> dict[str, list[str | None]]:
        out: dict[str, list[str | None]] = {}
        for _, unit, node in self.changes:
            out.setdefault(unit, []).append(node)
        return out


@contextlib.contextmanager
def fleet_on(lab: Lab) -> Iterator[Fleet]:
    fleet = Fleet(lab)
    try:
        fleet.wait_machines()
        yield fleet
    finally:
        fleet.close()


def moved_once(log: Mapping[str, list[str | None]], name: str, new_home: str) -> bool:
    """The target of ``name`` was removed once and set once, to ``new_home``."""
    return log.get(name) == [None, new_home]
