"""``fleetpy lab`` end to end, in process (click CliRunner) against real labs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fleetpy.cli.main import cli
from fleetpy.lab import Lab

pytestmark = pytest.mark.lab


def run(lab: Lab, *args: str) -> Result:
    command, rest = args[0], list(args[1:])
    return CliRunner().invoke(cli, ["lab", command, "--name", lab.name, "--state-dir", str(lab.dir), *rest])


def test_up_status_env_down(tmp_path: Path) -> None:
    name = f"c{os.getpid()}"
    base = ["--name", name, "--state-dir", str(tmp_path / "lab")]
    up = CliRunner().invoke(cli, ["lab", "up", *base, "--nodes", "2", "--no-agents", "--metadata", "node2:role=db"])
    try:
        assert up.exit_code == 0, up.output
        assert "node2" in up.output and f"fleetpy lab env --name {name}" in up.output
        lab = Lab(name, tmp_path / "lab")
        assert lab.record.node("node2").metadata == {"role": "db"}
        status = CliRunner().invoke(cli, ["lab", "status", *base])
        assert status.exit_code == 0
        rows = [line.split() for line in status.output.splitlines()]
        assert ["node1", "node1", lab.node_ip("node1"), lab.machine_id("node1"), "running", "up", "inactive"] in rows
        assert ["etcd1", lab.etcd_endpoints[0], "healthy"] == next(r for r in rows if r[:1] == ["etcd1"])[:3]
        env = CliRunner().invoke(cli, ["lab", "env", *base])
        assert env.output.splitlines() == [
            f"export FLEETCTL_ENDPOINT={lab.etcd_endpoints[0]}",
            "export FLEETCTL_DRIVER=etcd",
            "export FLEETCTL_SSH_USERNAME=root",
            f"export FLEETCTL_KNOWN_HOSTS_FILE={lab.known_hosts_path}",
            f"export FLEETCTL_SSH_IDENTITY={lab.ssh_key_path}",
            "export FLEETCTL_STRICT_HOST_KEY_CHECKING=true",
            f"export FLEETCTL_REMOTE_FLEETPY={sys.prefix}/bin/fleetpy",
        ]
    finally:
        down = CliRunner().invoke(cli, ["lab", "down", *base])
    assert down.exit_code == 0 and "removed" in down.output
    assert not (tmp_path / "lab").exists()


def test_exec_and_ssh_pass_exit_codes_through(lab3: Lab) -> None:
    assert run(lab3, "exec", "node1", "--", "sh", "-c", "exit 7").exit_code == 7
    assert run(lab3, "exec", "node2", "--", "true").exit_code == 0
    assert run(lab3, "ssh", "node3", "--", "exit 5").exit_code == 5
    assert run(lab3, "ssh", "node3", "--", "test $(hostname) = node3").exit_code == 0
    missing = run(lab3, "exec", "node9", "--", "true")
    assert missing.exit_code == 1 and missing.output.startswith("Error: lab ") and "no node 'node9'" in missing.output


def test_node_and_etcd_faults(lab3: Lab) -> None:
    assert run(lab3, "node", "cut", "node3").exit_code == 0
    assert lab3.status().nodes[2].cut
    assert run(lab3, "node", "heal", "node3").exit_code == 0
    assert not lab3.status().nodes[2].cut
    assert run(lab3, "node", "poweroff", "node3").exit_code == 0
    again = run(lab3, "node", "kill", "node3")
    assert again.exit_code == 1 and again.output == "Error: node3 is already off\n"
    assert run(lab3, "node", "start", "node3").exit_code == 0
    assert lab3.status().nodes[2].state == "running"
    assert run(lab3, "etcd", "stop", "etcd1").exit_code == 0
    assert lab3.status().etcd[0].state == "stopped"
    assert run(lab3, "etcd", "start", "1").exit_code == 0
    assert lab3.status().etcd[0].state == "healthy"
    bad = run(lab3, "node", "reboot", "node1")
    assert bad.exit_code != 0 and "reboot" in bad.output
