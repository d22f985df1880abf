"""``fleetpy restart`` in a real lab (issue 11): the CLI as a user runs it (subprocess, ``lab.env()``) against
fleetpyd on systemd nodes; what is checked is systemd's MainPID of the unit on its machine.

fleet 1.0's restart: a launched unit is stopped (target loaded, waited for) then started (target launched); a
missing unit is "Error creating units: unable to find Unit(X) in Registry or on filesystem", exit 1; an inactive
unit is refused with "Unable to restart unit X in state inactive", exit 1 (fleet exited 0); a global unit is
restarted on every machine that hosts it (through the registry, not over SSH as fleet did).

Every test runs with both drivers on one lab per module: ``etcd`` (the lab's etcd) and ``api`` (node1's fleetpyd
socket, reached from the host as ``unix:///proc/<node1's PID 1>/root/run/fleet.sock``). Unit names carry the
driver, so the two runs never see each other's units.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from fleetpy.lab import Lab
from tests.plugins.lab import require_lab, unique_lab_name
from tests.reliability.harness import Fleet, fleet_on, lab_kwargs, wait_for

pytestmark = pytest.mark.lab
UNIT = "[Unit]\nDescription=restart test\n[Service]\nExecStart=/bin/sleep 100000\n"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_lab()
    lab = Lab(unique_lab_name(), state_dir=tmp_path_factory.mktemp("restart-lab"))
    try:
        lab.up(**lab_kwargs())  # type: ignore[arg-type]
        with fleet_on(lab) as f:
            yield f
    finally:
        lab.down()


@dataclass(frozen=True)
class Names:
    hello: str
    idle: str
    everywhere: str
    missing: str


@pytest.fixture
def names(driver: str) -> Names:
    return Names(*(f"{base}-{driver}.service" for base in ("hello", "idle", "everywhere", "missing")))


@pytest.fixture
def units(tmp_path: pathlib.Path, names: Names) -> pathlib.Path:
    (tmp_path / names.hello).write_text(UNIT)
    (tmp_path / names.idle).write_text(UNIT)
    (tmp_path / names.everywhere).write_text(UNIT + "[X-Fleet]\nGlobal=true\n")
    return tmp_path


def node_socket(lab: Lab, node: str = "node1") -> str:
    """The host's path to a node's fleetpyd socket (its /run is a private tmpfs, seen through /proc)."""
    pid = lab.node_pid(node)
    assert pid is not None, f"{node} is not running"
    return f"unix:///proc/{pid}/root/run/fleet.sock"


@pytest.fixture
def fleetpy(fleet: Fleet, driver: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The installed ``fleetpy`` script, as a user runs it: ``lab.env()`` plus, for ``api``, node1's socket."""
    lab = fleet.lab
    env = {**os.environ, **lab.env()}
    if driver == "api":
        env.update(FLEETCTL_DRIVER="api", FLEETCTL_ENDPOINT=node_socket(lab))
    script = os.path.join(os.path.dirname(sys.executable), "fleetpy")

    def run(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([script, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
                              check=False)

    if driver == "api":  # the requests really go over HTTP to the node's socket
        wait_for("node1's API socket", lambda: os.path.exists(node_socket(lab)[len("unix://"):]))
        debug = run("--debug", "list-machines", "--no-legend")
        assert "DEBUG fleetpy.client: HTTP GET http://domain-sock/fleet/v1/machines" in debug.stderr, debug.stderr
        assert len(debug.stdout.splitlines()) == len(lab.nodes)
    return run


def main_pids(fleet: Fleet, name: str) -> dict[str, int]:
    """node -> MainPID of ``name`` where systemd has it active."""
    return fleet.where([name])[name]


Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_restart_gives_the_unit_a_new_process_and_it_ends_active(fleet: Fleet, fleetpy: Cli, names: Names,
                                                                  units: pathlib.Path) -> None:
    lab, hello = fleet.lab, names.hello
    assert fleetpy("start", hello, cwd=str(units)).returncode == 0
    before = main_pids(fleet, hello)
    assert len(before) == 1 and 0 not in before.values()
    node, pid = next(iter(before.items()))
    proc = fleetpy("restart", hello)
    assert proc.returncode == 0, proc.stderr
    legend = f"{lab.machine_id(node)[:8]}.../{lab.node_ip(node)}"
    assert proc.stdout == f"Unit {hello} loaded on {legend}\nUnit {hello} launched on {legend}\n"
    wait_for("a new process", lambda: main_pids(fleet, hello).get(node) not in (None, 0, pid))
    after = main_pids(fleet, hello)
    assert list(after) == [node]
    assert fleet.placement()[hello] == node
    units_out = fleetpy("list-units", "--no-legend", "--fields", "unit,active,sub")
    assert f"{hello}\tactive\trunning" in units_out.stdout.splitlines()


def test_restart_of_a_missing_unit_is_fleets_error(fleetpy: Cli, names: Names, tmp_path: pathlib.Path) -> None:
    proc = fleetpy("restart", names.missing, cwd=str(tmp_path))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"Error creating units: unable to find Unit({names.missing}) in Registry or on filesystem\n"


def test_restart_of_an_inactive_unit_is_refused(fleet: Fleet, fleetpy: Cli, names: Names,
                                                units: pathlib.Path) -> None:
    idle = names.idle
    assert fleetpy("submit", idle, cwd=str(units)).returncode == 0
    proc = fleetpy("restart", idle)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"Unable to restart unit {idle} in state inactive\n"
    assert fleet.registry.unit(idle).target_state.value == "inactive"  # type: ignore[union-attr]
    assert main_pids(fleet, idle) == {}


def test_restart_of_a_global_unit_restarts_it_on_every_machine(fleet: Fleet, fleetpy: Cli, names: Names,
                                                               units: pathlib.Path) -> None:
    lab, everywhere = fleet.lab, names.everywhere
    assert fleetpy("start", everywhere, cwd=str(units)).returncode == 0
    wait_for("the global unit on every node", lambda: set(main_pids(fleet, everywhere)) == set(lab.nodes))
    before = main_pids(fleet, everywhere)
    proc = fleetpy("restart", everywhere)
    assert (proc.returncode, proc.stdout) == (0, f"Triggered global unit {everywhere} restart\n"), proc.stderr

    def all_new() -> bool:
        now = main_pids(fleet, everywhere)
        return set(now) == set(lab.nodes) and all(now[n] not in (0, before[n]) for n in lab.nodes)

    wait_for("a new process on every node", all_new)
