"""Several Engine instances (one per simulated machine) sharing one real etcd: election, failover, machine loss.

Machines are registered with ``create_machine_state`` and kept alive by a heartbeat thread; "killing" one stops
its heartbeat so its object expires by TTL, as when a node dies. Every change of a ``job/<unit>/target`` key is
recorded from a watch, so "moved exactly once" is checked on what etcd actually saw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from fleetpy.engine.engine import Engine
from fleetpy.engine.plan import Task
from fleetpy.errors import FleetError
from fleetpy.model.records import JobState, MachineState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import IndexCleared
from fleetpy.testing import EtcdServer

pytestmark = pytest.mark.etcd

INTERVAL = 0.2  # engine reconcile interval: lease TTL 1 s
MACHINE_TTL = 2
IDS = {letter: letter * 8 + f"{i:024x}" for i, letter in enumerate("abcd")}


def wait_for(what: str, predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class RunningEngine:
    engine: Engine
    thread: threading.Thread
    stop_event: threading.Event
    tasks: list[Task] = field(default_factory=list)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)

    def crash(self) -> None:
        """Stop without releasing the lease, as a SIGKILLed fleetpyd would."""
        self.engine.leadership.release = lambda: None  # type: ignore[method-assign]
        self.stop()


class SimCluster:
    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self.stores: list[EtcdStore] = []
        self.reg = self.registry()
        self.alive: set[str] = set()
        self.engines: dict[str, RunningEngine] = {}
        self.events: list[tuple[str, str, str | None]] = []  # (unit, action, machine)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._heartbeat, daemon=True),
                         threading.Thread(target=self._record, daemon=True)]
        for thread in self._threads:
            thread.start()

    def registry(self) -> Registry:
        store = EtcdStore(self.url, timeout=3.0)
        self.stores.append(store)
        return Registry(store, self.prefix)

    # -- machines -------------------------------------------------------------------------------------------
    def add_machine(self, letter: str, **metadata: str) -> str:
        mid = IDS[letter]
        self.reg.create_machine_state(MachineState(mid, metadata=metadata), ttl=MACHINE_TTL)
        self.alive.add(mid)
        return mid

    def kill_machine(self, mid: str) -> None:
        self.alive.discard(mid)

    def _heartbeat(self) -> None:
        reg = self.registry()
        while not self._stop.wait(0.4):
            for mid in list(self.alive):
                try:
                    reg.refresh_machine_state(mid, MACHINE_TTL)
                except FleetError:
                    pass

    def _record(self) -> None:
        reg = self.registry()
        prefix = reg.keys.tree(Tree.JOB)
        index = reg.store.current_index()
        while not self._stop.is_set():
            try:
                event = reg.store.watch(prefix, after_index=index, timeout=0.5)
            except (IndexCleared, FleetError):
                continue
            if event is None:
                continue
            index = event.node.modified_index
            parts = reg.keys.split(event.node.key)
            if len(parts) == 3 and parts[2] == "target":
                self.events.append((parts[1], str(event.action), event.node.value))

    # -- engines and units ----------------------------------------------------------------------------------
    def start_engine(self, mid: str) -> RunningEngine:
        engine = Engine(self.registry(), mid, reconcile_interval=INTERVAL, watch_timeout=1.0)
        running = RunningEngine(engine, threading.Thread(target=lambda: None), threading.Event())
        inner = engine.reconcile_once

        def recorded() -> list[Task]:
            done = inner()
            running.tasks.extend(done)
            return done

        engine.reconcile_once = recorded  # type: ignore[method-assign]
        running.thread = threading.Thread(target=engine.run, args=(running.stop_event,), daemon=True,
                                          name=f"engine-{mid[:4]}")
        running.thread.start()
        self.engines[mid] = running
        return running

    def leader(self) -> str | None:
        lease = self.reg.lease()
        return lease.machine_id if lease is not None else None

    def submit(self, name: str, xfleet: str = "") -> None:
        text = f"[Service]\nExecStart=/bin/sleep 1000\n[X-Fleet]\n{xfleet}\n"
        self.reg.create_unit(Unit(name, UnitFile.parse(text), JobState.LAUNCHED))

    def targets(self) -> dict[str, str | None]:
        return {s.name: s.target_machine for s in self.reg.schedule()}

    def all_scheduled(self, names: list[str]) -> bool:
        targets = self.targets()
        return all(targets.get(n) for n in names)

    def close(self) -> None:
        for running in self.engines.values():
            running.stop()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        try:
            self.reg.store.delete(self.prefix.rstrip("/"), recursive=True)
        except FleetError:
            pass
        for store in self.stores:
            store.close()


@pytest.fixture
def sim(etcd_server: EtcdServer, etcd_prefix: str) -> Iterator[SimCluster]:
    cluster = SimCluster(etcd_server.url, etcd_prefix)
    yield cluster
    cluster.close()


def test_one_leader_schedules_everything_evenly(sim: SimCluster) -> None:
    machines = [sim.add_machine(x) for x in "abc"]
    for mid in machines:
        sim.start_engine(mid)
    names = [f"hello@{i}.service" for i in range(6)]
    for name in names:
        sim.submit(name)
    wait_for("all units scheduled", lambda: sim.all_scheduled(names))
    leader = sim.leader()
    assert leader in machines
    assert [mid for mid, e in sim.engines.items() if e.tasks] == [leader]
    placed = list(sim.targets().values())
    assert sorted(placed.count(mid) for mid in machines) == [2, 2, 2]


def test_failover_when_the_leader_dies_without_moving_anything(sim: SimCluster) -> None:
    machines = [sim.add_machine(x) for x in "abc"]
    for mid in machines:
        sim.start_engine(mid)
    sim.submit("db.service")
    sim.submit("app.service", "MachineOf=db.service")
    for i in range(3):
        sim.submit(f"spread@{i}.service", "Conflicts=spread@*.service")
    names = ["db.service", "app.service"] + [f"spread@{i}.service" for i in range(3)]
    wait_for("all units scheduled", lambda: sim.all_scheduled(names))
    before = sim.targets()
    events_before = len(sim.events)
    old = sim.leader()
    assert old is not None
    sim.engines[old].crash()
    wait_for("a new leader", lambda: sim.leader() not in (None, old))
    new = sim.leader()
    assert new is not None and new != old
    sim.submit("late.service")
    wait_for("the new leader schedules new work", lambda: sim.all_scheduled(["late.service"]))
    time.sleep(10 * INTERVAL)
    after = sim.targets()
    assert {n: after[n] for n in before} == before  # a leader change moves nothing
    assert [e for e in sim.events[events_before:] if e[0] != "late.service"] == []
    assert [t.unit for t in sim.engines[new].tasks] == ["late.service"]


def test_clean_shutdown_releases_the_lease(sim: SimCluster) -> None:
    a, b = sim.add_machine("a"), sim.add_machine("b")
    sim.start_engine(a)
    wait_for("a leads", lambda: sim.leader() == a)
    sim.start_engine(b)
    sim.engines[a].stop()
    assert sim.leader() in (None, b)  # released at once, not left to expire
    wait_for("b leads", lambda: sim.leader() == b, timeout=5)


def test_expired_machine_units_move_exactly_once_and_peers_together(sim: SimCluster) -> None:
    a, b, _ = (sim.add_machine(x) for x in "abc")
    sim.start_engine(a)
    sim.start_engine(b)
    sim.submit("ping.service")
    sim.submit("pong.service", "MachineOf=ping.service")
    names = ["ping.service", "pong.service"] + [f"u{i}.service" for i in range(5)]
    for name in names[2:]:
        sim.submit(name)
    wait_for("all units scheduled", lambda: sim.all_scheduled(names))
    before = sim.targets()
    victim = before["ping.service"]
    assert victim is not None
    on_victim = sorted(n for n, m in before.items() if m == victim)
    sim.events.clear()
    sim.kill_machine(victim)
    wait_for("the lost machine's units moved",
             lambda: all(sim.targets()[n] not in (None, victim) for n in on_victim), timeout=MACHINE_TTL + 8)
    time.sleep(MACHINE_TTL + 10 * INTERVAL)  # time for any second move to show up
    after = sim.targets()
    assert after["ping.service"] == after["pong.service"]
    for name in names:
        moves = [(action, m) for unit, action, m in sim.events if unit == name]
        if name in on_victim:
            assert [action for action, _ in moves] == ["compareAndDelete", "create"], name
        else:
            assert moves == [], name
            assert after[name] == before[name]


def test_bad_input_stays_unscheduled_with_reasons_others_scheduled(sim: SimCluster) -> None:
    a = sim.add_machine("a", role="web")
    sim.start_engine(a)
    sim.submit("loop-a.service", "MachineOf=loop-b.service")
    sim.submit("loop-b.service", "MachineOf=loop-a.service")
    sim.submit("orphan.service", "MachineOf=never.service")
    sim.submit("db.service", "MachineMetadata=role=db")
    sim.submit("fine.service")
    wait_for("fine.service scheduled", lambda: sim.all_scheduled(["fine.service"]))
    wait_for("reasons", lambda: len(sim.reg.reasons()) == 4)
    assert sim.reg.reasons() == {
        "db.service": "no machine has role=db",
        "loop-a.service": "MachineOf cycle: loop-a.service -> loop-b.service -> loop-a.service",
        "loop-b.service": "MachineOf cycle: loop-b.service -> loop-a.service -> loop-b.service",
        "orphan.service": "peer never.service not scheduled (no such unit)",
    }
    sim.reg.set_machine_metadata(a, "role", "db")
    wait_for("db.service scheduled once its metadata exists", lambda: sim.all_scheduled(["db.service"]))
    wait_for("its reason cleared", lambda: "db.service" not in sim.reg.reasons())
