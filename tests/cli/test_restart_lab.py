"""``fleetpy restart`` in a real lab (issue 11): the CLI as a user runs it (subprocess, ``lab.env()``) against
fleetpyd on systemd nodes; what is checked is systemd's MainPID of the unit on its machine.

fleet 1.0's restart: a launched unit is stopped (target loaded, waited for) then started (target launched); a
missing unit is "Error creating units: unable to find Unit(X) in Registry or on filesystem", exit 1; an inactive
unit is refused with "Unable to restart unit X in state inactive", exit 1 (fleet exited 0); a global unit is
restarted on every machine that hosts it (through the registry, not over SSH as fleet did).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from fleetpy.lab import Lab
from tests.plugins.lab import require_lab, unique_lab_name
from tests.reliability.harness import Fleet, fleet_on, fleetpy, lab_kwargs, wait_for

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


@pytest.fixture
def units(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "hello.service").write_text(UNIT)
    (tmp_path / "idle.service").write_text(UNIT)
    (tmp_path / "everywhere.service").write_text(UNIT + "[X-Fleet]\nGlobal=true\n")
    return tmp_path


def main_pids(fleet: Fleet, name: str) -> dict[str, int]:
    """node -> MainPID of ``name`` where systemd has it active."""
    return fleet.where([name])[name]


def test_restart_gives_the_unit_a_new_process_and_it_ends_active(fleet: Fleet, units: pathlib.Path) -> None:
    lab = fleet.lab
    assert fleetpy(lab, "start", "hello.service", cwd=str(units)).returncode == 0
    before = main_pids(fleet, "hello.service")
    assert len(before) == 1 and 0 not in before.values()
    node, pid = next(iter(before.items()))
    proc = fleetpy(lab, "restart", "hello.service")
    assert proc.returncode == 0, proc.stderr
    legend = f"{lab.machine_id(node)[:8]}.../{lab.node_ip(node)}"
    assert proc.stdout == f"Unit hello.service loaded on {legend}\nUnit hello.service launched on {legend}\n"
    wait_for("a new process", lambda: main_pids(fleet, "hello.service").get(node) not in (None, 0, pid))
    after = main_pids(fleet, "hello.service")
    assert list(after) == [node]
    assert fleet.placement()["hello.service"] == node
    units_out = fleetpy(lab, "list-units", "--no-legend", "--fields", "unit,active,sub")
    assert "hello.service\tactive\trunning" in units_out.stdout.splitlines()


def test_restart_of_a_missing_unit_is_fleets_error(fleet: Fleet, tmp_path: pathlib.Path) -> None:
    proc = fleetpy(fleet.lab, "restart", "missing.service", cwd=str(tmp_path))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "Error creating units: unable to find Unit(missing.service) in Registry or on filesystem\n"


def test_restart_of_an_inactive_unit_is_refused(fleet: Fleet, units: pathlib.Path) -> None:
    assert fleetpy(fleet.lab, "submit", "idle.service", cwd=str(units)).returncode == 0
    proc = fleetpy(fleet.lab, "restart", "idle.service")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == "Unable to restart unit idle.service in state inactive\n"
    assert fleet.registry.unit("idle.service").target_state.value == "inactive"  # type: ignore[union-attr]
    assert main_pids(fleet, "idle.service") == {}


def test_restart_of_a_global_unit_restarts_it_on_every_machine(fleet: Fleet, units: pathlib.Path) -> None:
    lab = fleet.lab
    assert fleetpy(lab, "start", "everywhere.service", cwd=str(units)).returncode == 0
    wait_for("the global unit on every node", lambda: set(main_pids(fleet, "everywhere.service")) == set(lab.nodes))
    before = main_pids(fleet, "everywhere.service")
    proc = fleetpy(lab, "restart", "everywhere.service")
    assert (proc.returncode, proc.stdout) == (0, "Triggered global unit everywhere.service restart\n"), proc.stderr

    def all_new() -> bool:
        now = main_pids(fleet, "everywhere.service")
        return set(now) == set(lab.nodes) and all(now[n] not in (0, before[n]) for n in lab.nodes)

    wait_for("a new process on every node", all_new)
