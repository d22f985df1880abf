"""Bad input and a bad environment: one clear ``Error:`` line, exit 1, nothing half-created.

Most run without root, through the ``Host`` seam (``which``, ``geteuid``) or PATH; those that get past the
preflight (taken names, a second ``up``) need root and are marked ``lab``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetpy.cli.main import cli
from fleetpy.errors import LabError
from fleetpy.lab import Host, Lab
from fleetpy.lab import state as lab_state
from fleetpy.lab.host import preflight


def _lab_files() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def test_not_root_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    lab = Lab("nr", tmp_path / "nr", host=Host(geteuid=lambda: 1000))
    with pytest.raises(LabError, match="needs root") as info:
        lab.up(nodes=1)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "nr").exists()


def test_not_root_cannot_touch_an_existing_lab(tmp_path: Path) -> None:
    node = lab_state.NodeRecord("node1", 1, "node1", "10.77.0.11", "ab" * 16, "fp-x-n1", "fpv-x-1")
    record = lab_state.LabRecord("x", "10.77.0.0/24", "fpb-x", "10.77.0.1", (node,), (), ())
    lab_state.write_record(lab_state.LabPaths(tmp_path), record)
    lab = Lab("x", tmp_path, host=Host(geteuid=lambda: 1000))
    assert lab.nodes == ["node1"] and lab.node_ip("node1") == "10.77.0.11"  # reading the record is fine
    for action in (lab.down, lab.status, lambda: lab.exec("node1", ["true"]), lambda: lab.kill("node1"),
                   lambda: lab.cut("node1"), lambda: lab.etcd_stop("etcd1")):
        with pytest.raises(LabError, match="needs root"):
            action()
    assert (tmp_path / "lab.json").exists()


def test_missing_etcd_names_the_package(tmp_path: Path) -> None:
    real = Host()
    host = Host(which=lambda name: None if name == "etcd" else real.which(name) or f"/usr/bin/{name}",
                geteuid=lambda: 0, cgroup2_mounted=lambda: True)
    with pytest.raises(LabError) as info:
        Lab("ne", tmp_path / "ne", host=host).up(nodes=1)
    assert str(info.value) == "etcd not found: apt-get install etcd-server"
    assert not (tmp_path / "ne").exists()


def test_missing_systemd_and_several_binaries_in_one_line() -> None:
    host = Host(which=lambda name: None if name in ("ip", "nsenter") else f"/usr/bin/{name}", geteuid=lambda: 0,
                systemd_candidates=("/nonexistent/systemd",), cgroup2_mounted=lambda: True)
    with pytest.raises(LabError) as info:
        preflight(host)
    message = str(info.value)
    assert "\n" not in message
    assert "ip not found: apt-get install iproute2" in message
    assert "nsenter not found: apt-get install util-linux" in message
    assert "systemd not found" in message and "apt-get install systemd" in message


def test_cli_not_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["lab", "up", "--name", "nr", "--state-dir", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: the lab needs root (namespaces, cgroups, bridges): run it with sudo or as root"]
    assert not (tmp_path / "s").exists()


def test_cli_missing_binaries_via_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    result = CliRunner().invoke(cli, ["lab", "up", "--name", "np", "--state-dir", str(tmp_path / "s")],
                                env={"PATH": str(tmp_path / "empty-bin")})
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "etcd not found: apt-get install etcd-server" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, message", [
    (["up", "--name", "bad name"], "invalid lab name"),
    (["status", "--name", "nosuchlab"], "no lab named nosuchlab"),
    (["up", "--name", "m", "--metadata", "node7:role=db"], "metadata for unknown node 'node7'"),
    (["up", "--name", "m", "--subnet", "8.8.8.0/24"], "must be a private /24"),
], ids=["bad-name", "status-of-missing-lab", "metadata-unknown-node", "public-subnet"])
def test_cli_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str],
                                 message: str) -> None:
    monkeypatch.setenv("FLEETPY_LAB_DIR", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    result = CliRunner().invoke(cli, ["lab", *args])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output


def test_cli_bad_metadata_syntax_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["lab", "up", "--state-dir", str(tmp_path), "--metadata", "role=db"])
    assert result.exit_code != 0 and "NODE:KEY=VALUE" in result.output


def test_down_of_a_missing_lab_is_a_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLEETPY_LAB_DIR", str(tmp_path))
    for _ in range(2):
        result = CliRunner().invoke(cli, ["lab", "down", "--name", "ghost"])
        assert result.exit_code == 0 and "not up" in result.output


@pytest.mark.lab
def test_state_dir_not_empty(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("x")
    with pytest.raises(LabError, match="not empty"):
        Lab("ne1", tmp_path).up(nodes=1)
    assert os.listdir(tmp_path) == ["precious"]


@pytest.mark.lab
def test_subnet_taken(lab3: Lab, tmp_path: Path) -> None:
    before = _lab_files()
    with pytest.raises(LabError, match=f"subnet {lab3.record.subnet} is already in use"):
        Lab("sub1", tmp_path / "s").up(nodes=1, subnet=lab3.record.subnet)
    assert not (tmp_path / "s").exists() and _lab_files() == before


@pytest.mark.lab
def test_bridge_name_taken(tmp_path: Path) -> None:
    name = f"bt{os.getpid()}"
    bridge = lab_state.bridge_name(name)
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        with pytest.raises(LabError, match=f"bridge name {bridge} is already taken"):
            Lab(name, tmp_path / "s").up(nodes=1)
        assert not (tmp_path / "s").exists()
        assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0  # not ours
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False)


@pytest.mark.lab
def test_second_up_never_makes_a_second_set_of_nodes(lab3: Lab) -> None:
    before = _lab_files()
    with pytest.raises(LabError, match="is already up"):
        Lab(lab3.name, lab3.dir).up(nodes=2)
    assert _lab_files() == before
    assert lab3.is_up and len(lab3.nodes) == 3
    result = CliRunner().invoke(cli, ["lab", "up", "--name", lab3.name, "--state-dir", str(lab3.dir)])
    assert result.exit_code == 1 and result.output.startswith(f"Error: lab {lab3.name} is already up")


def test_lab_tests_skip_when_not_root_even_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.plugins.lab import require_lab

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for ci in ("", "true"):
        monkeypatch.setenv("CI", ci)
        with pytest.raises(pytest.skip.Exception, match="need root"):
            require_lab()


def test_missing_prerequisites_skip_locally_and_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.plugins.lab import require_lab

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="etcd not found"):
        require_lab()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"missing in CI: .*etcd not found"):
        require_lab()
