"""``--tunnel``, ``status``, ``journal`` and ``ssh`` on a real 3-node lab (systemd + fleetpyd + sshd per node).

Every command runs from the host through ``--tunnel <node1>``: the registry traffic rides one SSH connection to
node1, and the hop to the unit's machine (node2) is ssh-in-ssh through that same connection. The CLI runs in
process (click's CliRunner) with its default wiring of the tunnel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fleetpy.cli.main import cli
from fleetpy.lab import Lab

pytestmark = pytest.mark.lab

UNIT = "chatty.service"
Invoke = Callable[..., Result]


def chatty(machine_id: str) -> str:
    return ("[Unit]\nDescription=Chatty lab unit\n\n[Service]\n"
            "ExecStart=/bin/sh -c 'while true; do echo \"lab tick on $(hostname)\"; sleep 1; done'\n\n"
            f"[X-Fleet]\nMachineID={machine_id}\n")


def eventually(what: str, probe: Callable[[], Result | None], timeout: float = 60.0) -> Result:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last.exit_code == 0:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}: {last and (last.stdout + last.stderr)}", pytrace=False)


@pytest.fixture(scope="module")
def lab(lab3: Lab) -> Lab:
    for node in lab3.nodes:
        lab3.start_agent(node)
    return lab3


@pytest.fixture(scope="module")
def fleetpy(lab: Lab) -> Invoke:
    """Run the CLI in process against the lab, through ``--tunnel <node1 ip>`` unless ``tunnel=False``."""

    def invoke(*args: str, tunnel: bool = True) -> Result:
        head = ["--tunnel", lab.node_ip("node1")] if tunnel else []
        return CliRunner(env=lab.env()).invoke(cli, [*head, *args])

    return invoke


@pytest.fixture(scope="module")
def started(lab: Lab, fleetpy: Invoke, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """chatty.service pinned to node2, started through the tunnel."""
    eventually("3 machines", lambda: _rows(fleetpy("list-machines", "--no-legend"), 3))
    path = tmp_path_factory.mktemp("units") / UNIT
    path.write_text(chatty(lab.machine_id("node2")))
    result = fleetpy("start", "--block-attempts", "30", str(path))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"Unit {UNIT} launched on {lab.machine_id('node2')[:8]}.../{lab.node_ip('node2')}" in result.stdout
    yield UNIT
    fleetpy("destroy", UNIT)


def _rows(result: Result, count: int) -> Result | None:
    return result if result.exit_code == 0 and len(result.stdout.splitlines()) == count else None


def test_list_commands_through_tunnel(lab: Lab, fleetpy: Invoke, started: str) -> None:
    machines = fleetpy("list-machines", "--full", "--no-legend")
    assert machines.exit_code == 0, machines.stderr
    assert {line.split()[0] for line in machines.stdout.splitlines()} == {lab.machine_id(n) for n in lab.nodes}
    units = eventually("chatty active in list-units", lambda: _active(fleetpy("list-units", "--no-legend")))
    assert f"{lab.machine_id('node2')[:8]}.../{lab.node_ip('node2')}" in units.stdout
    files = fleetpy("list-unit-files", "--no-legend", "--fields", "unit,dstate,state")
    assert files.stdout.split() == [UNIT, "launched", "launched"]
    cat = fleetpy("cat", UNIT)
    assert cat.exit_code == 0 and "lab tick on" in cat.stdout


def _active(result: Result) -> Result | None:
    return result if result.exit_code == 0 and f"{UNIT}" in result.stdout and "active" in result.stdout else None


def test_status_on_another_node_through_tunnel(lab: Lab, fleetpy: Invoke, started: str) -> None:
    result = eventually("status", lambda: fleetpy("status", UNIT))
    assert "Active: active" in result.stdout and "chatty.service - Chatty lab unit" in result.stdout
    assert result.stderr == ""


def test_status_direct_without_tunnel(fleetpy: Invoke, started: str) -> None:
    result = eventually("status", lambda: fleetpy("status", UNIT, tunnel=False))
    assert "Active: active" in result.stdout


def test_journal_shows_the_units_output(fleetpy: Invoke, started: str) -> None:
    def probe() -> Result | None:
        result = fleetpy("journal", "--lines", "5", UNIT)
        return result if "lab tick on node2" in result.stdout else None

    result = eventually("journal output", probe, timeout=20)
    assert len(result.stdout.splitlines()) <= 5


def test_ssh_to_unit_runs_on_its_node(lab: Lab, fleetpy: Invoke, started: str) -> None:
    result = fleetpy("ssh", UNIT, "--", "hostname")
    assert (result.exit_code, result.stdout) == (0, lab.hostname("node2") + "\n"), result.stderr
    assert fleetpy("ssh", UNIT, "--", "false").exit_code == 1


def test_ssh_to_machine_prefix(lab: Lab, fleetpy: Invoke) -> None:
    result = fleetpy("ssh", "--machine", lab.machine_id("node3")[:12], "--", "cat", "/etc/machine-id")
    assert (result.exit_code, result.stdout.strip()) == (0, lab.machine_id("node3"))


def test_lifecycle_verbs_through_tunnel(lab: Lab, fleetpy: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "verbs.service"
    path.write_text("[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\n"
                    f"MachineID={lab.machine_id('node3')}\n")
    for args in (("submit", str(path)), ("load", "--block-attempts", "30", "verbs.service"),
                 ("start", "--block-attempts", "30", "verbs.service"), ("stop", "verbs.service"),
                 ("unload", "verbs.service"), ("destroy", "verbs.service")):
        result = fleetpy(*args)
        assert result.exit_code == 0, f"{args}: {result.stdout}{result.stderr}"
    assert "verbs.service" not in fleetpy("list-unit-files").stdout
