"""Remote command lines (quoting) and the machine runner: local for this machine, SSH for the others."""

from __future__ import annotations

import io
import shlex
from pathlib import Path

import pytest

from fleetpy.model.records import MachineState
from fleetpy.ssh.client import connect
from fleetpy.ssh.remote import MachineRunner, journalctl, local_machine_id, quote_command, systemctl_status

from .conftest import SSHServer

HOSTILE = [
    "a;rm -rf x.service", "$(touch PWNED)", "`touch PWNED`", "a && touch PWNED", "a|touch PWNED", "a\ntouch PWNED",
    "'; touch PWNED; '", '"; touch PWNED; "', "-rf", "*", "~root", "a b", "", "é.service",
]


@pytest.mark.parametrize("arg", HOSTILE)
def test_quote_command_round_trips(arg: str) -> None:
    assert shlex.split(quote_command(["systemctl", "status", arg])) == ["systemctl", "status", arg]


def test_hostile_unit_name_is_one_argument() -> None:
    assert quote_command(systemctl_status("a;rm -rf x.service")) == "systemctl status -l -- 'a;rm -rf x.service'"


@pytest.mark.parametrize(("kw", "argv"), [
    pytest.param({}, "journalctl --unit u.service --no-pager -n 10 --output short", id="defaults"),
    pytest.param({"lines": 3, "output": "json", "follow": True},
                 "journalctl --unit u.service --no-pager -n 3 --output json -f", id="follow-json"),
    pytest.param({"sudo": True}, "sudo journalctl --unit u.service --no-pager -n 10 --output short", id="sudo"),
])
def test_journalctl_command(kw: dict[str, object], argv: str) -> None:
    assert " ".join(journalctl("u.service", **kw)) == argv  # type: ignore[arg-type]


def test_hostile_arguments_cannot_run_a_second_command(sshd: SSHServer, tmp_path: Path) -> None:
    """Through a real remote shell: each argument arrives intact and nothing else runs."""
    with connect(sshd.host, sshd.port, sshd.config()) as conn:
        out, err = io.BytesIO(), io.BytesIO()
        command = f"cd {shlex.quote(str(tmp_path))} && " + quote_command(["printf", "[%s]\\n", *HOSTILE])
        assert conn.run(command, stdout=out, stderr=err) == 0
    assert out.getvalue().decode() == "".join(f"[{arg}]\n" for arg in HOSTILE)
    assert not (tmp_path / "PWNED").exists() and list(tmp_path.iterdir()) == []


def test_local_machine_id() -> None:
    assert len(local_machine_id()) == 32
    assert local_machine_id("/nonexistent") == ""


def test_runner_runs_locally_for_this_machine(sshd: SSHServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{sshd.bin_dir}:/usr/bin:/bin")
    runner = MachineRunner(sshd.config(), port=1, local_id="me")  # port 1: any SSH attempt would fail
    out, err = io.BytesIO(), io.BytesIO()
    code = runner.run(MachineState("me", public_ip="192.0.2.1"), systemctl_status("failing.service"),
                      stdout=out, stderr=err)
    assert (code, out.getvalue()) == (3, b"systemctl <status> <-l> <--> <failing.service>\n")


def test_runner_uses_ssh_for_other_machines_and_reuses_connections(sshd: SSHServer) -> None:
    runner = MachineRunner(sshd.config(), port=sshd.port, local_id="me")
    machine = MachineState("other", public_ip="127.0.0.1")
    try:
        for _ in range(2):
            out, err = io.BytesIO(), io.BytesIO()
            assert runner.run(machine, systemctl_status("a;touch x.service"), stdout=out, stderr=err) == 0
            assert out.getvalue() == b"systemctl <status> <-l> <--> <a;touch x.service>\n"
        assert len(runner._connections) == 1
    finally:
        runner.close()


def test_runner_refuses_machine_without_ip(sshd: SSHServer) -> None:
    from fleetpy.errors import FleetError

    with pytest.raises(FleetError, match="has no public IP"):
        MachineRunner(sshd.config(), local_id="me").run(MachineState("other"), ["true"], stdout=io.BytesIO(),
                                                       stderr=io.BytesIO())
