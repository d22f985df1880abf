"""fleetpyd in a real lab (systemd as PID 1 per node, one etcd): units reach systemd on the machine they are
scheduled to, states come back from every node, and the agent survives restarts and faults as fleet's does.

Units are scheduled by writing ``job/<u>/target`` directly (as the engine would); engines are disabled here.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from fleetpy.lab import Lab
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from tests.agent.harness import wait_until

pytestmark = pytest.mark.lab
L, D, I = JobState.LAUNCHED, JobState.LOADED, JobState.INACTIVE  # noqa: E741
TIMEOUT = 15.0  # fleet's functional tests wait up to 15 s for a state
_counter = itertools.count()


def body(text: str = "sleep 1000", extra: str = "") -> UnitFile:
    return UnitFile.parse(f"[Unit]\nDescription=lab test\n[Service]\nExecStart=/bin/{text}\n{extra}")


class Cluster:
    def __init__(self, lab: Lab, prefix: str) -> None:
        self.lab = lab
        self.prefix = prefix
        self.store = EtcdStore(lab.etcd_endpoints, timeout=3.0)
        self.registry = Registry(self.store, prefix)
        self.ids = {node: lab.machine_id(node) for node in lab.nodes}
        self.env = {"FLEET_ETCD_KEY_PREFIX": prefix, "FLEET_DISABLE_ENGINE": "true", "FLEET_AGENT_TTL": "5s"}

    def start(self, node: str, **env: str) -> None:
        self.lab.start_agent(node, env={**self.env, **env})

    def start_all(self, **env: str) -> None:
        for node in self.lab.nodes:
            self.start(node, **env)
        assert wait_until(lambda: {m.id for m in self.registry.machines()} == set(self.ids.values()), TIMEOUT)

    def submit(self, name: str, node: str | None, unit_file: UnitFile | None = None, state: JobState = L) -> None:
        self.registry.create_unit(Unit(name, unit_file or body(), state))
        if node is not None:
            self.registry.schedule_unit(name, self.ids[node])

    def state(self, name: str, node: str) -> tuple[str, str, str] | None:
        for s in self.registry.unit_states(unit_name=name):
            if s.machine_id == self.ids[node]:
                return s.load_state, s.active_state, s.sub_state
        return None

    def wait_state(self, name: str, node: str, wanted: tuple[str, str, str] | None) -> None:
        assert wait_until(lambda: self.state(name, node) == wanted, TIMEOUT), (name, node, self.state(name, node))

    def systemctl(self, node: str, *args: str) -> str:
        return self.lab.exec(node, ["systemctl", *args], timeout=20).stdout.strip()

    def main_pid(self, node: str, name: str) -> int:
        return int(self.systemctl(node, "show", "-p", "MainPID", "--value", name) or 0)

    def local_units(self, node: str) -> list[str]:
        out = self.lab.exec(node, ["ls", "-A", "/run/fleet/units"], timeout=10).stdout.split()
        return sorted(n for n in out if not n.startswith("."))

    def journal(self, node: str) -> str:
        return self.lab.exec(node, ["journalctl", "-u", "fleetpyd.service", "--no-pager", "-o", "cat"],
                             timeout=20).stdout

    def scrub(self) -> None:
        """Stop agents and leave no unit behind in any node, whatever the test did."""
        for node in self.lab.nodes:
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
def cluster(lab3: Lab) -> Iterator[Cluster]:
    c = Cluster(lab3, f"/agent-lab/{os.getpid()}-{next(_counter)}/")
    try:
        yield c
    finally:
        c.scrub()


def test_units_run_on_their_machine_and_states_come_from_every_node(cluster: Cluster) -> None:
    cluster.start_all()
    for i, node in enumerate(cluster.lab.nodes, start=1):
        cluster.submit(f"hello{i}.service", node)
    for i, node in enumerate(cluster.lab.nodes, start=1):
        cluster.wait_state(f"hello{i}.service", node, ("loaded", "active", "running"))
        assert cluster.systemctl(node, "is-active", f"hello{i}.service") == "active"
        assert cluster.local_units(node) == [f"hello{i}.service"]
        assert cluster.systemctl(node, "is-enabled", f"hello{i}.service") == "linked-runtime"
    states = cluster.registry.unit_states()
    assert sorted((s.name, s.machine_id) for s in states) == sorted(
        (f"hello{i}.service", cluster.ids[n]) for i, n in enumerate(cluster.lab.nodes, start=1))
    assert all(s.unit_hash == body().hash for s in states)
    assert cluster.registry.job("hello1.service").job_state == cluster.ids["node1"]  # type: ignore[union-attr]


def test_stop_unload_start_replace_destroy_reach_systemd(cluster: Cluster) -> None:
    cluster.start("node2")
    cluster.submit("life.service", "node2")
    cluster.wait_state("life.service", "node2", ("loaded", "active", "running"))
    cluster.registry.set_target_state("life.service", D)
    cluster.wait_state("life.service", "node2", ("loaded", "inactive", "dead"))
    assert cluster.systemctl("node2", "is-active", "life.service") == "inactive"
    cluster.registry.set_target_state("life.service", I)
    cluster.wait_state("life.service", "node2", None)
    assert cluster.local_units("node2") == []
    cluster.registry.set_target_state("life.service", L)
    cluster.wait_state("life.service", "node2", ("loaded", "active", "running"))
    pid = cluster.main_pid("node2", "life.service")
    cluster.registry.create_unit(Unit("life.service", body("sleep 2000"), L))  # --replace
    assert wait_until(lambda: [s.unit_hash for s in cluster.registry.unit_states(unit_name="life.service")]
                      == [body("sleep 2000").hash], TIMEOUT)
    cluster.wait_state("life.service", "node2", ("loaded", "active", "running"))
    assert cluster.main_pid("node2", "life.service") not in (0, pid)
    assert "sleep 2000" in cluster.systemctl("node2", "cat", "life.service")
    cluster.registry.destroy_unit("life.service")
    cluster.wait_state("life.service", "node2", None)
    assert cluster.local_units("node2") == []
    assert cluster.systemctl("node2", "is-active", "life.service") in ("inactive", "unknown")


def test_global_unit_runs_on_every_matching_node(cluster: Cluster) -> None:
    cluster.start_all()
    cluster.submit("everywhere.service", None, body(extra="[X-Fleet]\nGlobal=true\n"))
    cluster.submit("dbonly.service", None, body(extra="[X-Fleet]\nGlobal=true\nMachineMetadata=role=db\n"))
    for node in cluster.lab.nodes:
        cluster.wait_state("everywhere.service", node, ("loaded", "active", "running"))
    cluster.wait_state("dbonly.service", "node1", ("loaded", "active", "running"))
    assert [s.machine_id for s in cluster.registry.unit_states(unit_name="dbonly.service")] == [cluster.ids["node1"]]
    assert cluster.local_units("node2") == ["everywhere.service"]


def test_a_killed_process_with_restart_no_shows_failed(cluster: Cluster) -> None:
    cluster.start("node3")
    cluster.submit("crash.service", "node3", body(extra="Restart=no\n"))
    cluster.wait_state("crash.service", "node3", ("loaded", "active", "running"))
    cluster.systemctl("node3", "kill", "-s", "SIGKILL", "crash.service")
    cluster.wait_state("crash.service", "node3", ("loaded", "failed", "failed"))


def test_unit_systemd_refuses_shows_its_load_error_and_others_run(cluster: Cluster) -> None:
    cluster.start("node1")
    cluster.submit("a-bad.service", "node1", UnitFile.parse("[Unit]\nDescription=no command\n[Service]\nType=simple\n"))
    cluster.submit("b-good.service", "node1")
    cluster.wait_state("a-bad.service", "node1", ("bad-setting", "inactive", "dead"))
    cluster.wait_state("b-good.service", "node1", ("loaded", "active", "running"))
    assert "StartUnit a-bad.service" in cluster.journal("node1")


def test_agent_sigkill_and_restart_leaves_running_units_untouched(cluster: Cluster) -> None:
    cluster.start("node2")
    cluster.submit("keep.service", "node2")
    cluster.wait_state("keep.service", "node2", ("loaded", "active", "running"))
    pid = cluster.main_pid("node2", "keep.service")
    cluster.lab.stop_agent("node2", "SIGKILL")
    assert wait_until(lambda: cluster.lab.agent_pid("node2") is None, TIMEOUT)
    assert cluster.systemctl("node2", "is-active", "keep.service") == "active"
    cluster.start("node2")
    assert wait_until(lambda: "running as machine" in cluster.journal("node2").split("Started fleetpyd")[-1],
                      TIMEOUT)
    cluster.registry.set_target_state("keep.service", L)  # a change wakes the agent: still nothing to do
    cluster.submit("later.service", "node2")
    cluster.wait_state("later.service", "node2", ("loaded", "active", "running"))
    assert cluster.main_pid("node2", "keep.service") == pid
    assert cluster.state("keep.service", "node2") == ("loaded", "active", "running")
    last_run = cluster.journal("node2").split("Started fleetpyd")[-1]
    assert "took over the registration" in last_run and "unit=keep.service" not in last_run


def test_sigterm_stops_and_unloads_units_and_removes_states_and_machine(cluster: Cluster) -> None:
    cluster.start("node3")
    cluster.submit("bye.service", "node3")
    cluster.wait_state("bye.service", "node3", ("loaded", "active", "running"))
    cluster.lab.stop_agent("node3")
    assert cluster.systemctl("node3", "is-active", "bye.service") in ("inactive", "unknown")
    assert cluster.local_units("node3") == []
    assert cluster.registry.unit_states() == []
    assert cluster.registry.machine(cluster.ids["node3"]) is None
    assert cluster.registry.job("bye.service").job_state is None  # type: ignore[union-attr]


def test_sigterm_with_shutdown_keep_units_leaves_them_running(cluster: Cluster) -> None:
    cluster.start("node1", FLEET_SHUTDOWN_KEEP_UNITS="true")
    cluster.submit("stay.service", "node1")
    cluster.wait_state("stay.service", "node1", ("loaded", "active", "running"))
    pid = cluster.main_pid("node1", "stay.service")
    cluster.lab.stop_agent("node1")
    assert cluster.systemctl("node1", "is-active", "stay.service") == "active"
    # kept (no TTL): only an engine sweeps them, once the machine key expired (engines are disabled here)
    assert cluster.state("stay.service", "node1") == ("loaded", "active", "running")
    assert cluster.registry.machine(cluster.ids["node1"]) is not None
    cluster.start("node1", FLEET_SHUTDOWN_KEEP_UNITS="true")
    assert wait_until(lambda: "running as machine" in cluster.journal("node1").split("Started fleetpyd")[-1],
                      TIMEOUT)
    cluster.wait_state("stay.service", "node1", ("loaded", "active", "running"))
    assert cluster.main_pid("node1", "stay.service") == pid


def test_duplicate_machine_id_is_refused(cluster: Cluster) -> None:
    from fleetpy.model.records import MachineState

    cluster.registry.create_machine_state(MachineState(cluster.ids["node2"], public_ip="10.200.0.99"), ttl=60)
    cluster.start("node2")
    assert wait_until(lambda: cluster.systemctl("node2", "show", "-p", "ExecMainStatus", "--value",
                                                "fleetpyd.service") == "1", TIMEOUT)
    journal = cluster.journal("node2")
    assert f"machine-id {cluster.ids['node2']} is already registered" in journal and "10.200.0.99" in journal


def test_etcd_outage_keeps_units_running_and_reconverges(cluster: Cluster) -> None:
    cluster.start("node1")
    cluster.submit("steady.service", "node1")
    cluster.wait_state("steady.service", "node1", ("loaded", "active", "running"))
    pid = cluster.main_pid("node1", "steady.service")
    cluster.lab.etcd_stop("etcd1")
    try:
        import time
        time.sleep(8)  # longer than agent_ttl (5 s)
        assert cluster.systemctl("node1", "is-active", "steady.service") == "active"
        assert cluster.local_units("node1") == ["steady.service"]
    finally:
        cluster.lab.etcd_start("etcd1")
    assert wait_until(lambda: cluster.registry.machine(cluster.ids["node1"]) is not None, TIMEOUT)
    cluster.wait_state("steady.service", "node1", ("loaded", "active", "running"))
    cluster.submit("after.service", "node1")
    cluster.wait_state("after.service", "node1", ("loaded", "active", "running"))
    assert cluster.main_pid("node1", "steady.service") == pid
    journal = cluster.journal("node1")
    assert journal.count("machine heartbeat failed") == 1 and "machine heartbeat recovered" in journal
    assert "task UnloadUnit" not in journal


def test_sighup_rebuilds_the_server_without_touching_units(cluster: Cluster) -> None:
    cluster.start("node3")
    cluster.submit("hup.service", "node3")
    cluster.wait_state("hup.service", "node3", ("loaded", "active", "running"))
    unit_pid, agent_pid = cluster.main_pid("node3", "hup.service"), cluster.lab.agent_pid("node3")
    cluster.lab.stop_agent("node3", "SIGHUP")
    assert wait_until(lambda: cluster.journal("node3").split("Started fleetpyd")[-1].count("running as machine") == 2,
                      TIMEOUT)
    assert cluster.lab.agent_pid("node3") == agent_pid
    cluster.submit("after-hup.service", "node3")
    cluster.wait_state("after-hup.service", "node3", ("loaded", "active", "running"))
    assert cluster.main_pid("node3", "hup.service") == unit_pid
    assert cluster.state("hup.service", "node3") == ("loaded", "active", "running")
    assert cluster.registry.machine(cluster.ids["node3"]) is not None
    last_run = cluster.journal("node3").split("Started fleetpyd")[-1]
    assert "SIGHUP: configuration re-read" in last_run and "UnloadUnit" not in last_run


def test_with_engines_units_are_scheduled_and_move_when_an_agent_shuts_down(cluster: Cluster) -> None:
    cluster.env["FLEET_DISABLE_ENGINE"] = "false"
    cluster.env["FLEET_ENGINE_RECONCILE_INTERVAL"] = "0.5"
    cluster.start_all()
    names = [f"sched{i}.service" for i in range(6)]
    for name in names:
        cluster.submit(name, None)

    def placement() -> dict[str, str]:
        return {s.name: s.machine_id for s in cluster.registry.unit_states() if s.active_state == "active"}
    assert wait_until(lambda: len(placement()) == 6, TIMEOUT)
    by_machine = {m: sorted(n for n, mm in placement().items() if mm == m) for m in cluster.ids.values()}
    assert all(len(units) == 2 for units in by_machine.values())  # least loaded
    cluster.lab.stop_agent("node2")
    gone = cluster.ids["node2"]
    assert wait_until(lambda: len(placement()) == 6 and gone not in placement().values(), TIMEOUT)
    assert cluster.local_units("node2") == []
