"""The engine's sweep of gone machines' unit states: the pure plan (table-driven, no etcd), the ``Sweeper``'s
due logic and executor (in memory), and on a real etcd: a vanished machine's states are swept by a running engine,
a machine that came back keeps its own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fleetpy.engine.sweep import Delete, Sweeper, plan_sweep
from fleetpy.model.records import MachineState, UnitState
from fleetpy.registry import codec
from fleetpy.registry.keys import Keys, Tree
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Node
from fleetpy.testing import EtcdServer
from tests.engine.builders import SHORT, A, B, C

K = Keys("/p/")
HASH = "0" * 40


def state(unit: str, on: str, index: int = 5) -> Node:
    return Node(K.state(unit, on), codec.encode_unit_state(UnitState(unit, on, "loaded", "active", "running", HASH)),
                index)


def legacy(unit: str, on: str, index: int = 6) -> Node:
    return Node(K.legacy_state(unit), codec.encode_unit_state(UnitState(unit, on, "loaded", "active", "running",
                                                                        HASH)), index)


def beat(unit: str, on: str, index: int = 7) -> Node:
    return Node(K.job_state(unit), on, index)


def other(unit: str) -> Node:
    return Node(K.target(unit), A, 8)


def short(deletes: tuple[Delete, ...]) -> list[str]:
    return [f"{SHORT[d.machine_id]} {'/'.join(K.split(d.key)[:3])}@{d.index}" for d in deletes]


CASES = [
    # (name, live, held, states, legacy, jobs, expected deletes, expected waiting)
    ("nothing gone", {A, B}, set(), [state("x", A), state("x", B)], [legacy("x", B)], [beat("x", A)], [], set()),
    ("gone machine: its three keys", {A}, set(),
     [state("x", A), state("x", B, 11)], [legacy("x", B, 12)], [beat("x", B, 13), other("x")],
     ["B job/x/job-state@13", "B state/x@12", "B states/x/" + B + "@11"], set()),
    ("shared keys now another machine's are kept", {A}, set(),
     [state("x", B)], [legacy("x", A)], [beat("x", A)], ["B states/x/" + B + "@5"], set()),
    ("held machine waits", {A}, {B}, [state("x", B), state("y", C)], [], [beat("x", B)],
     ["C states/y/" + C + "@5"], {B}),
    ("every machine gone", set(), set(), [state("x", A), state("y", B)], [], [],
     ["A states/x/" + A + "@5", "B states/y/" + B + "@5"], set()),
    ("unreadable legacy value is left alone", {A}, set(), [], [Node(K.legacy_state("x"), "{", 3)], [], [], set()),
    ("empty heartbeat is left alone", {A}, set(), [], [], [Node(K.job_state("x"), "", 3)], [], set()),
]


@pytest.mark.parametrize(("live", "held", "states", "legacy_nodes", "jobs", "expected", "waiting"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(live: set[str], held: set[str], states: list[Node], legacy_nodes: list[Node], jobs: list[Node],
              expected: list[str], waiting: set[str]) -> None:
    result = plan_sweep(K, live=live, held=held, states=states, legacy=legacy_nodes, jobs=jobs)
    assert short(result.deletes) == expected
    assert result.held == waiting
    assert all(d.reason for d in result.deletes)


def test_delete_reads_as_a_task_line() -> None:
    delete = plan_sweep(K, live=set(), held=set(), states=[state("x", A)], legacy=[], jobs=[]).deletes[0]
    assert str(delete) == f'SweepKey key=/p/states/x/{A} machine={A} reason="unit state of a machine that is gone"'


# -- the Sweeper, in memory ---------------------------------------------------------------------------------------
@pytest.fixture
def reg() -> Registry:
    return Registry(MemoryStore(), "/p/")


def publish(registry: Registry, unit: str, on: str) -> None:
    registry.save_unit_state(UnitState(unit, on, "loaded", "active", "running", HASH))
    registry.unit_heartbeat(unit, on)


def jobs(registry: Registry) -> list[Node]:
    return list(registry.listing(Tree.JOB).nodes)


def up(*machines: str) -> list[Node]:
    """The machines/ leaves of live machines (an unreadable object still counts as live)."""
    return [Node(K.machine_object(m), "{", 1) for m in machines]


def keys_of(registry: Registry) -> list[str]:
    return sorted("/".join(registry.keys.split(n.key)) for tree in (Tree.STATES, Tree.LEGACY_STATE, Tree.JOB)
                  for n in registry.listing(tree).nodes)


def test_sweeper_runs_once_per_term_and_after_a_loss_only(reg: Registry) -> None:
    sweeper = Sweeper(reg)
    publish(reg, "x", A)
    publish(reg, "y", B)
    assert sweeper.due
    assert sweeper.sweep(machines=up(A, B), held=set(), jobs=lambda: jobs(reg)) == []
    assert not sweeper.due
    reg.store.delete = None  # type: ignore[assignment,method-assign]  # any request now would fail the test
    reg.store.list = None  # type: ignore[assignment,method-assign]
    assert sweeper.sweep(machines=up(A, B, C), held=set(), jobs=list) == []  # a machine joined: nothing to do
    del reg.store.delete, reg.store.list  # type: ignore[attr-defined]
    assert sweeper.sweep(machines=up(A, C), held=set(), jobs=lambda: jobs(reg)) != []  # B left
    assert keys_of(reg) == ["job/x/job-state", "state/x", f"states/x/{A}"]
    assert sweeper.swept == 3 and not sweeper.due
    sweeper.new_term()
    assert sweeper.due


def test_held_machine_is_swept_once_released(reg: Registry) -> None:
    sweeper = Sweeper(reg)
    publish(reg, "y", B)
    assert sweeper.sweep(machines=up(A), held={B}, jobs=lambda: jobs(reg)) == []
    assert sweeper.due and len(keys_of(reg)) == 3
    assert len(sweeper.sweep(machines=up(A), held=set(), jobs=lambda: jobs(reg))) == 3
    assert keys_of(reg) == [] and not sweeper.due


def test_machine_back_or_key_rewritten_is_never_wiped(reg: Registry) -> None:
    publish(reg, "x", B)
    publish(reg, "y", C)
    sweeper = Sweeper(reg)
    plan = plan_sweep(reg.keys, live={A}, held=set(), states=reg.listing(Tree.STATES).nodes,
                      legacy=reg.listing(Tree.LEGACY_STATE).nodes, jobs=jobs(reg))
    assert len(plan.deletes) == 6
    reg.create_machine_state(MachineState(B), ttl=30)  # B registered again after the snapshot
    publish(reg, "y", C)  # C's keys were rewritten after the snapshot (new indexes)
    assert sweeper.execute(plan) == []
    assert len(keys_of(reg)) == 6


# -- a running engine on a real etcd ------------------------------------------------------------------------------
@pytest.fixture
def sim(etcd_server: EtcdServer, etcd_prefix: str) -> Iterator[object]:
    from tests.engine.test_engine_etcd import SimCluster

    cluster = SimCluster(etcd_server.url, etcd_prefix)
    yield cluster
    cluster.close()


@pytest.mark.etcd
def test_vanished_machine_states_are_swept_and_a_re_registered_ones_are_not(sim: object) -> None:
    from tests.engine.test_engine_etcd import MACHINE_TTL, SimCluster, wait_for

    assert isinstance(sim, SimCluster)
    a, b, c = (sim.add_machine(x) for x in "abc")
    for mid, unit in ((a, "on-a.service"), (b, "on-b.service"), (c, "on-c.service")):
        sim.submit(unit, f"MachineID={mid}")
        publish(sim.reg, unit, mid)
    sim.start_engine(a)
    wait_for("the units scheduled", lambda: sim.all_scheduled(["on-a.service", "on-b.service", "on-c.service"]))
    sim.kill_machine(b)
    wait_for("b's states swept", lambda: [s.machine_id for s in sim.reg.unit_states()] == sorted([a, c]),
             timeout=MACHINE_TTL + 10)
    assert sim.reg.job("on-b.service").job_state is None  # type: ignore[union-attr]
    assert sim.reg.store.get(sim.reg.keys.legacy_state("on-b.service")) is None
    assert sim.reg.job("on-a.service").job_state == a  # type: ignore[union-attr]
    # c vanishes and comes back at once (an agent re-registers, then republishes): its states survive
    sim.kill_machine(c)
    wait_for("c expired", lambda: sim.reg.machine(c) is None, timeout=MACHINE_TTL + 5)
    sim.reg.create_machine_state(MachineState(c), ttl=MACHINE_TTL)
    sim.alive.add(c)
    publish(sim.reg, "on-c.service", c)
    time.sleep(1.5)  # several engine passes (0.2 s)
    assert sorted(s.machine_id for s in sim.reg.unit_states()) == sorted([a, c])
    assert sim.reg.job("on-c.service").job_state == c  # type: ignore[union-attr]
