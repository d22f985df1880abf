"""fleet's functional scheduling scenarios on a real lab: fleetpyd (agent + engine) on systemd nodes, one etcd.

Ported from fleet's ``functional/scheduling_test.go`` and ``cluster_test.go``: MachineOf pairs, Conflicts,
one-way conflicts, Replaces, MachineID, and migration when a member goes away. Units are submitted through the
registry (as ``fleetpy start`` does) and the engine places them; what is checked is what systemd runs.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator

import pytest

from fleetpy.lab import Lab
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry

pytestmark = pytest.mark.lab
TIMEOUT = 20.0  # fleet's functional tests allow 15 s per state; a machine loss adds the agent TTL
RUNNING = ("loaded", "active", "running")
_counter = itertools.count()


def wait_for(what: str, predicate: Callable[[], object], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Fleet:
    def __init__(self, lab: Lab, prefix: str) -> None:
        self.lab = lab
        self.prefix = prefix
        self.store = EtcdStore(lab.etcd_endpoints, timeout=3.0)
        self.registry = Registry(self.store, prefix)
        self.ids = {node: lab.machine_id(node) for node in lab.nodes}
        self.nodes = {mid: node for node, mid in self.ids.items()}
        self.env = {"FLEET_ETCD_KEY_PREFIX": prefix, "FLEET_AGENT_TTL": "4s",
                    "FLEET_ENGINE_RECONCILE_INTERVAL": "0.5"}

    def start_all(self) -> None:
        for node in self.lab.nodes:
            self.lab.start_agent(node, env=self.env)
        wait_for("every machine", lambda: {m.id for m in self.registry.machines()} == set(self.ids.values()))

    def start(self, name: str, xfleet: str = "") -> None:
        text = f"[Service]\nExecStart=/bin/sleep 1000\n[X-Fleet]\n{xfleet}\n"
        self.registry.create_unit(Unit(name, UnitFile.parse(text), JobState.LAUNCHED))

    def active(self) -> dict[str, str]:
        """unit -> node, for units systemd runs on the machine they are scheduled to."""
        targets = {s.name: s.target_machine for s in self.registry.schedule()}
        return {s.name: self.nodes[s.machine_id] for s in self.registry.unit_states()
                if (s.load_state, s.active_state, s.sub_state) == RUNNING and targets.get(s.name) == s.machine_id}

    def wait_active(self, names: list[str], timeout: float = TIMEOUT) -> dict[str, str]:
        wait_for(f"{names} active", lambda: set(names) <= set(self.active()), timeout)
        return self.active()

    def main_pid(self, node: str, name: str) -> int:
        out = self.lab.exec(node, ["systemctl", "show", "-p", "MainPID", "--value", name], timeout=20).stdout
        return int(out.strip() or 0)

    def leader(self) -> str | None:
        lease = self.registry.lease()
        return self.nodes.get(lease.machine_id) if lease is not None else None

    def scrub(self) -> None:
        for node in self.lab.nodes:
            if self.lab.node_pid(node) is None:
                self.lab.start(node)
            self.lab.stop_agent(node, "SIGKILL")
            script = ("for f in /run/fleet/units/*; do [ -f \"$f\" ] || continue; n=$(basename \"$f\"); "
                      "systemctl stop \"$n\"; systemctl disable --runtime \"$n\"; systemctl reset-failed \"$n\"; "
                      "rm -f \"$f\"; done; systemctl daemon-reload; systemctl reset-failed fleetpyd.service")
            self.lab.exec(node, ["sh", "-c", script], timeout=60)
        try:
            self.store.delete(self.prefix.rstrip("/"), recursive=True)
        except Exception:
            pass
        self.store.close()


@pytest.fixture
def fleet(lab3: Lab) -> Iterator[Fleet]:
    f = Fleet(lab3, f"/engine-lab/{os.getpid()}-{next(_counter)}/")
    try:
        f.start_all()
        yield f
    finally:
        f.scrub()


def test_machine_of_pairs_land_and_move_together(fleet: Fleet) -> None:
    """TestScheduleMachineOf: ping/pong pairs share a machine, and move together when it leaves."""
    names = []
    for i in range(3):
        fleet.start(f"ping.{i}.service")
        fleet.start(f"pong.{i}.service", f"MachineOf=ping.{i}.service")
        names += [f"ping.{i}.service", f"pong.{i}.service"]
    where = fleet.wait_active(names)
    assert all(where[f"ping.{i}.service"] == where[f"pong.{i}.service"] for i in range(3))
    leaving = where["ping.0.service"]
    fleet.lab.stop_agent(leaving)
    wait_for("pair 0 moved", lambda: fleet.active().get("ping.0.service") not in (None, leaving)
             and fleet.active().get("pong.0.service") not in (None, leaving))
    where = fleet.wait_active(names)
    assert leaving not in where.values()
    assert all(where[f"ping.{i}.service"] == where[f"pong.{i}.service"] for i in range(3))


def test_conflicting_units_spread_and_the_rest_wait_with_a_reason(fleet: Fleet) -> None:
    """TestScheduleConflicts: 5 units conflicting with each other on 3 machines: exactly 3 run, apart."""
    for i in range(5):
        fleet.start(f"conflict.{i}.service", "Conflicts=conflict.*.service")
    wait_for("3 active", lambda: len(fleet.active()) == 3)
    time.sleep(2)
    where = fleet.active()
    assert len(where) == 3 and len(set(where.values())) == 3
    reasons = fleet.registry.reasons()
    assert sorted(reasons) == sorted({f"conflict.{i}.service" for i in range(5)} - set(where))
    assert all(r.startswith("conflicts with conflict.") and r.endswith("on every machine") for r in reasons.values())


def test_one_way_conflict_waits_for_the_other_to_go(fleet: Fleet) -> None:
    """TestScheduleOneWayConflict (on the one role=db machine): hello waits until its conflicter is destroyed."""
    fleet.start("conflicts-with-hello.service", "MachineMetadata=role=db\nConflicts=hello.service")
    fleet.wait_active(["conflicts-with-hello.service"])
    fleet.start("hello.service", "MachineMetadata=role=db")
    wait_for("hello's reason", lambda: "hello.service" in fleet.registry.reasons())
    assert fleet.registry.reasons()["hello.service"] == "no machine can run it: 2 lack role=db; " \
                                                       "1 has conflicting conflicts-with-hello.service"
    fleet.registry.destroy_unit("conflicts-with-hello.service")
    assert fleet.wait_active(["hello.service"])["hello.service"] == "node1"


def test_replaces_takes_the_machine_and_the_replaced_unit_moves(fleet: Fleet) -> None:
    """TestScheduleReplace: replace-kick0 lands where replace.0 ran; replace.0 moves elsewhere."""
    fleet.start("replace.0.service")
    old_home = fleet.wait_active(["replace.0.service"])["replace.0.service"]
    fleet.start("replace-kick0.service", "Replaces=replace.0.service")
    wait_for("kick0 on replace.0's machine", lambda: fleet.active().get("replace-kick0.service") == old_home)
    where = fleet.wait_active(["replace.0.service", "replace-kick0.service"])
    assert where["replace.0.service"] != old_home


def test_machine_id_full_and_short(fleet: Fleet) -> None:
    """TestScheduleConditionMachineID: each unit lands on the machine it names."""
    pins = {"pin-full.service": ("node2", fleet.ids["node2"]), "pin-short.service": ("node3", fleet.ids["node3"][:8])}
    for name, (_, wanted) in pins.items():
        fleet.start(name, f"MachineID={wanted}")
    where = fleet.wait_active(list(pins))
    assert where == {name: node for name, (node, _) in pins.items()}


def test_killed_leader_hands_over_and_only_its_machines_units_move(fleet: Fleet) -> None:
    """SIGKILL the leading fleetpyd: a new leader takes over; units elsewhere keep running untouched (no
    restart, no move); the dead machine's units move once its TTL expires."""
    names = [f"hello@{i}.service" for i in range(6)]
    for name in names:
        fleet.start(name)
    before = fleet.wait_active(names)
    leader = fleet.leader()
    assert leader is not None
    pids = {n: fleet.main_pid(node, n) for n, node in before.items() if node != leader}
    fleet.lab.stop_agent(leader, "SIGKILL")
    wait_for("a new leader", lambda: fleet.leader() not in (None, leader))
    # a SIGKILLed fleetpyd leaves its units running (fleet #440); they move once its machine's TTL expires
    wait_for("the dead machine's units active elsewhere",
             lambda: set(fleet.active()) == set(names) and leader not in fleet.active().values())
    after = fleet.active()
    for name, pid in pids.items():
        assert after[name] == before[name]
        assert fleet.main_pid(after[name], name) == pid


def test_stopped_leader_hands_over_on_its_lease_release(fleet: Fleet) -> None:
    """A leader's clean stop releases the lease and another engine takes it on the release's watch event, then
    moves the stopped machine's units once its machine object is removed. Engines here tick every 20 s (lease
    TTL 100 s): waiting for either would blow the bounds below, which are loose enough for a loaded machine."""
    slow = {**fleet.env, "FLEET_ENGINE_RECONCILE_INTERVAL": "20"}
    for node in fleet.lab.nodes:
        fleet.lab.start_agent(node, env=slow)
    wait_for("a leader", lambda: fleet.leader() is not None)
    names = [f"handover@{i}.service" for i in range(6)]
    for name in names:
        fleet.start(name)
    before = fleet.wait_active(names)
    leader = fleet.leader()
    assert leader is not None and leader in before.values()
    fleet.lab.stop_agent(leader)  # SIGTERM: purge, release the lease, remove the machine
    wait_for("a new leader", lambda: fleet.leader() not in (None, leader), timeout=8.0)
    wait_for("the stopped machine's units active elsewhere",
             lambda: set(fleet.active()) == set(names) and leader not in fleet.active().values(), timeout=12.0)


def test_new_member_takes_the_lost_members_unit_and_nothing_else_moves(lab_factory: Callable[..., Lab]) -> None:
    """TestDynamicClusterNewMemberUnitMigration: 3 conflicting units on 4 machines; one member's fleetpyd stops:
    its unit moves to the free machine, the other two do not move."""
    lab = lab_factory(nodes=4, agents=False)
    fleet = Fleet(lab, f"/engine-lab/{os.getpid()}-{next(_counter)}/")
    try:
        fleet.start_all()
        names = [f"conflict.{i}.service" for i in range(3)]
        for name in names:
            fleet.start(name, "Conflicts=conflict.*.service")
        before = fleet.wait_active(names)
        free = (set(lab.nodes) - set(before.values())).pop()
        leaving = before["conflict.0.service"]
        pids = {n: fleet.main_pid(node, n) for n, node in before.items() if node != leaving}
        fleet.lab.stop_agent(leaving)
        wait_for("conflict.0 on the free machine", lambda: fleet.active().get("conflict.0.service") == free)
        after = fleet.active()
        for name, pid in pids.items():
            assert after[name] == before[name] and fleet.main_pid(after[name], name) == pid
    finally:
        fleet.scrub()
