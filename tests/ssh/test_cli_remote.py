"""``fleetpy status|journal|ssh`` and ``--tunnel`` end to end: the real CLI, a real etcd, a real sshd on loopback.

systemd's tools are stand-ins (``conftest.FAKE_TOOLS``) that print their arguments: the machine under test has no
systemd as PID 1. Machines in the registry have PublicIP 127.0.0.1 (the test sshd) or this machine's ID (local).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fleetpy.cli.context import CliEnv
from fleetpy.cli.main import cli
from fleetpy.model.records import JobState, MachineState, Unit, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from fleetpy.ssh.remote import local_machine_id
from fleetpy.testing import EtcdServer

from .conftest import SSHServer

LOCAL = local_machine_id()
OTHER = "cafe0000000000000000000000000001"
TWIN = "cafe0000ffff00000000000000000002"  # shares the prefix "cafe0000" with OTHER


@dataclass
class Cluster:
    etcd: EtcdServer
    sshd: SSHServer
    prefix: str
    known_hosts: Path
    invoke: Callable[..., Result]


def _seed(registry: Registry) -> None:
    for machine_id in (LOCAL, OTHER, TWIN):
        registry.create_machine_state(MachineState(machine_id, public_ip="127.0.0.1"), ttl=600)
    plain = UnitFile.parse("[Service]\nExecStart=/bin/sleep infinity\n")
    units = {"hello.service": OTHER, "failing.service": OTHER, "here.service": LOCAL, "cafe00000.service": OTHER,
             "idle.service": None}
    for name, machine_id in units.items():
        unit = Unit(name, plain, JobState.LAUNCHED)
        registry.create_unit(unit)
        if machine_id is not None:
            registry.schedule_unit(name, machine_id)
            registry.save_unit_state(UnitState(name, machine_id, "loaded", "active", "running", unit.hash), ttl=600)
            registry.unit_heartbeat(name, machine_id, ttl=600)
    glob = Unit("global.service", UnitFile.parse("[Service]\nExecStart=/bin/true\n[X-Fleet]\nGlobal=true\n"),
                JobState.LAUNCHED)
    registry.create_unit(glob)
    for machine_id in (LOCAL, OTHER):
        registry.save_unit_state(UnitState("global.service", machine_id, "loaded", "active", "running", glob.hash),
                                 ttl=600)


@pytest.fixture
def cluster(etcd_server: EtcdServer, etcd_prefix: str, sshd: SSHServer, monkeypatch: pytest.MonkeyPatch,
            etcd_store: EtcdStore) -> Iterator[Cluster]:
    _seed(Registry(etcd_store, etcd_prefix))
    monkeypatch.setenv("PATH", f"{sshd.bin_dir}:{os.environ['PATH']}")  # local runs find the stand-ins too
    monkeypatch.setenv("FLEETCTL_SSH_IDENTITY", str(sshd.client_key))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("FLEETCTL_TUNNEL", raising=False)
    known_hosts = sshd.known_hosts_file()

    def invoke(*args: str, globals_: tuple[str, ...] = (), obj: CliEnv | None = None) -> Result:
        argv = ["--driver", "etcd", "--endpoint", etcd_server.url, "--etcd-key-prefix", etcd_prefix,
                "--ssh-username", "root", "--known-hosts-file", str(known_hosts), "--ssh-timeout", "5",
                *globals_, *args]
        extra = {"obj": obj} if obj is not None else {}
        return CliRunner().invoke(cli, argv, catch_exceptions=False, **extra)

    yield Cluster(etcd_server, sshd, etcd_prefix, known_hosts, invoke)


def port_opt(cluster: Cluster) -> tuple[str, str]:
    return ("--ssh-port", str(cluster.sshd.port))


def stub(command: str, *args: str) -> str:
    return command + "".join(f" <{a}>" for a in args) + "\n"


# -- status -------------------------------------------------------------------------------------------------
def test_status_on_another_machine_over_ssh(cluster: Cluster) -> None:
    result = cluster.invoke("status", *port_opt(cluster), "hello")
    assert (result.exit_code, result.stdout, result.stderr) == (0, stub("systemctl", "status", "-l", "--",
                                                                        "hello.service"), "")


def test_status_passes_the_exit_code_on(cluster: Cluster) -> None:
    assert cluster.invoke("status", *port_opt(cluster), "failing.service").exit_code == 3


def test_status_of_a_unit_on_this_machine_runs_locally(cluster: Cluster) -> None:
    result = cluster.invoke("status", "--ssh-port", "1", "here.service")  # port 1: SSH would fail
    assert (result.exit_code, result.stdout) == (0, stub("systemctl", "status", "-l", "--", "here.service"))


def test_status_of_several_units_separated_by_blank_lines(cluster: Cluster) -> None:
    result = cluster.invoke("status", *port_opt(cluster), "hello.service", "here.service")
    assert result.stdout == stub("systemctl", "status", "-l", "--", "hello.service") + "\n" + \
        stub("systemctl", "status", "-l", "--", "here.service")


def test_status_of_a_global_unit_runs_on_each_machine(cluster: Cluster) -> None:
    result = cluster.invoke("status", *port_opt(cluster), "global.service")
    line = stub("systemctl", "status", "-l", "--", "global.service")
    assert (result.exit_code, result.stdout) == (0, line + "\n" + line)


@pytest.mark.parametrize(("unit", "message"), [
    pytest.param("missing.service", "Unit missing.service does not exist.", id="missing"),
    pytest.param("idle.service", "Unit idle.service does not appear to be loaded.", id="not-loaded"),
    pytest.param("a;touch x", "Unit a;touch x.service does not exist.", id="hostile-name"),
])
def test_status_refusals(cluster: Cluster, unit: str, message: str) -> None:
    result = cluster.invoke("status", *port_opt(cluster), unit)
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", message + "\n")


def test_status_machine_unreachable_is_one_line(cluster: Cluster) -> None:
    port = _closed_port()
    result = cluster.invoke("status", "--ssh-port", str(port), "hello.service")
    assert result.exit_code == 1
    assert result.stderr == f"Error: Unable to SSH to root@127.0.0.1:{port}: connection refused\n"


# -- journal ------------------------------------------------------------------------------------------------
def test_journal(cluster: Cluster) -> None:
    result = cluster.invoke("journal", *port_opt(cluster), "hello.service")
    assert (result.exit_code, result.stdout) == (0, stub("journalctl", "--unit", "hello.service", "--no-pager",
                                                         "-n", "10", "--output", "short"))


def test_journal_options(cluster: Cluster) -> None:
    result = cluster.invoke("journal", *port_opt(cluster), "--lines", "3", "--output", "json", "--sudo", "hello")
    assert result.stdout == "sudo " + stub("journalctl", "--unit", "hello.service", "--no-pager", "-n", "3",
                                           "--output", "json")


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(("global.service",), "Unable to retrieve journal of global unit global.service.", id="global"),
    pytest.param(("a.service", "b.service"), "One unit file must be provided.", id="two-units"),
    pytest.param(("missing.service",), "Unit missing.service does not exist.", id="missing"),
    pytest.param(("idle.service",), "Unit idle.service does not appear to be loaded.", id="not-loaded"),
])
def test_journal_refusals(cluster: Cluster, args: tuple[str, ...], message: str) -> None:
    result = cluster.invoke("journal", *port_opt(cluster), *args)
    assert (result.exit_code, result.stderr) == (1, message + "\n")


def test_journal_follow_stops_quietly_on_ctrl_c(cluster: Cluster) -> None:
    argv = [sys.executable, "-m", "fleetpy.cli.main", "--driver", "etcd", "--endpoint", cluster.etcd.url,
            "--etcd-key-prefix", cluster.prefix, "--ssh-username", "root",
            "--known-hosts-file", str(cluster.known_hosts), "journal", "-f", *port_opt(cluster), "hello.service"]
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}  # a SIGABRT prints every thread's stack: see below
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2],
                          env=env) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith(b"journalctl <--unit> <hello.service>") and first.rstrip().endswith(b"<-f>")
            assert proc.stdout.readline() == b"tick\n"  # streaming, not buffered until the end
            proc.send_signal(signal.SIGINT)
            try:
                _out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)  # where it hangs, for the report
                _out, err = proc.communicate(timeout=10)
                pytest.fail("journal -f still running 10 s after SIGINT:\n" + err.decode(errors="replace"))
        finally:
            if proc.poll() is None:
                proc.kill()
    assert (proc.returncode, err) == (130, b"")


# -- ssh ----------------------------------------------------------------------------------------------------
def test_ssh_machine_prefix_runs_command(cluster: Cluster) -> None:
    result = cluster.invoke("ssh", *port_opt(cluster), "--machine", OTHER[:10], "--", "hostname")
    assert (result.exit_code, result.stdout) == (0, socket.gethostname() + "\n"), result.stderr


@pytest.mark.parametrize(("command", "code"), [(("false",), 1), (("exit", "7"), 7), (("true",), 0)])
def test_ssh_exit_codes_propagate(cluster: Cluster, command: tuple[str, ...], code: int) -> None:
    assert cluster.invoke("ssh", *port_opt(cluster), "--machine", OTHER, "--", *command).exit_code == code


def test_ssh_to_a_unit(cluster: Cluster) -> None:
    result = cluster.invoke("ssh", *port_opt(cluster), "hello.service", "--", "echo", "on", "$(hostname)")
    assert (result.exit_code, result.stdout) == (0, f"on {socket.gethostname()}\n")  # one remote command line


def test_ssh_words_without_dashes(cluster: Cluster) -> None:
    result = cluster.invoke("ssh", *port_opt(cluster), "-u", "hello", "ls", "-d", "/")
    assert (result.exit_code, result.stdout) == (0, "/\n")


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(("cafe00000",), "Unable to proceed: ambiguous argument, both machine and unit found for `cafe00000`.\n"
                 "Please use flag `-m` or `-u` to refine the search", id="ambiguous"),
    pytest.param(("--machine", "cafe000"), "Unable to proceed: found more than one machine", id="two-machines"),
    pytest.param(("--machine", "f00d"), "Unable to proceed: machine does not exist", id="no-machine"),
    pytest.param(("--unit", "global.service"), "Unable to proceed: global units unsupported", id="global"),
    pytest.param(("--unit", "nope"), "Unable to proceed: unit does not exist", id="no-unit"),
    pytest.param(("nothing",), "Unable to proceed: could not find matching unit or machine", id="nothing"),
    pytest.param((), "Unable to proceed: one machine or unit must be provided", id="no-argument"),
    pytest.param(("--unit", "idle"), "Could not determine address of machine.", id="unscheduled"),
    pytest.param(("-m", "x", "-u", "y"), "Both machine and unit flags provided, please specify only one.",
                 id="both-flags"),
])
def test_ssh_lookup_errors(cluster: Cluster, args: tuple[str, ...], message: str) -> None:
    result = cluster.invoke("ssh", *port_opt(cluster), *args)
    assert (result.exit_code, result.stderr) == (1, message + "\n")


# -- --tunnel -----------------------------------------------------------------------------------------------
def tunnel_opt(cluster: Cluster) -> tuple[str, str]:
    return ("--tunnel", f"127.0.0.1:{cluster.sshd.port}")


def test_status_through_tunnel(cluster: Cluster) -> None:
    result = cluster.invoke("status", *port_opt(cluster), "hello.service", globals_=tunnel_opt(cluster))
    assert (result.exit_code, result.stdout) == (0, stub("systemctl", "status", "-l", "--", "hello.service"))


def test_ssh_through_tunnel(cluster: Cluster) -> None:
    result = cluster.invoke("ssh", *port_opt(cluster), "-m", OTHER, "--", "exit 5", globals_=tunnel_opt(cluster))
    assert result.exit_code == 5


def test_list_commands_through_tunnel(cluster: Cluster) -> None:
    """Other commands get the tunnel through the CLI's default wiring (``CliEnv.transport_factory``)."""
    result = cluster.invoke("list-machines", "--full", globals_=tunnel_opt(cluster))
    assert result.exit_code == 0, result.stderr
    assert OTHER in result.stdout and LOCAL in result.stdout


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tunnel_host_unreachable(cluster: Cluster) -> None:
    port = _closed_port()
    result = cluster.invoke("status", "hello.service", globals_=("--tunnel", f"127.0.0.1:{port}"))
    assert (result.exit_code, result.stderr) == (1, f"Error: Unable to SSH to root@127.0.0.1:{port}: "
                                                    "connection refused\n")


def test_tunnel_refused_key(cluster: Cluster, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    result = cluster.invoke("status", "--ssh-identity", str(wrong), "hello.service", globals_=tunnel_opt(cluster))
    assert result.exit_code == 1
    assert result.stderr == (f"Error: Unable to SSH to root@127.0.0.1:{cluster.sshd.port}: authentication refused "
                             f"(tried {wrong})\n")


def test_tunnel_timeout_within_ssh_timeout(cluster: Cluster) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        start = time.monotonic()
        result = cluster.invoke("journal", "hello.service",
                                globals_=("--tunnel", f"127.0.0.1:{port}", "--ssh-timeout", "1"))
        elapsed = time.monotonic() - start
    assert (result.exit_code, result.stderr) == (1, f"Error: Unable to SSH to root@127.0.0.1:{port}: timed out "
                                                    "after 1s waiting for the SSH banner\n")
    assert elapsed < 2.0


def test_tunnel_host_cannot_reach_etcd(cluster: Cluster) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}"
    result = cluster.invoke("ssh", "-m", OTHER, "--", "true", globals_=(*tunnel_opt(cluster), "--endpoint", dead))
    assert (result.exit_code, result.stderr) == (1, f"Error: tunnel host 127.0.0.1:{cluster.sshd.port} cannot "
                                                    f"reach etcd ({dead}: Connect failed)\n")


def test_unknown_tunnel_host_refused_without_terminal(cluster: Cluster, tmp_path: Path) -> None:
    result = cluster.invoke("status", "hello.service",
                            globals_=(*tunnel_opt(cluster), "--known-hosts-file", str(tmp_path / "kh")))
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert f"host key for [127.0.0.1]:{cluster.sshd.port} is unknown" in result.stderr
    assert not (tmp_path / "kh").exists()


def test_non_strict_checking_records_the_host(cluster: Cluster, tmp_path: Path) -> None:
    known = tmp_path / "kh"
    result = cluster.invoke("status", *port_opt(cluster), "hello.service",
                            globals_=("--known-hosts-file", str(known), "--strict-host-key-checking=false"))
    assert result.exit_code == 0, result.stderr
    assert known.read_text().startswith(f"[127.0.0.1]:{cluster.sshd.port} ssh-ed25519 ")


def _read_until_closed(fd: int, timeout: float = 10.0) -> bytes:
    import select

    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the other side of the pty is closed
                break
            if not data:
                break
            out += data
    return out


def test_interactive_shell_on_a_terminal(cluster: Cluster) -> None:
    """``fleetpy ssh MACHINE`` on a terminal: a remote pty, raw local mode, the shell's exit code."""
    import pty

    master, slave = pty.openpty()
    argv = [sys.executable, "-m", "fleetpy.cli.main", "--driver", "etcd", "--endpoint", cluster.etcd.url,
            "--etcd-key-prefix", cluster.prefix, "--ssh-username", "root",
            "--known-hosts-file", str(cluster.known_hosts), "ssh", *port_opt(cluster), "-m", OTHER]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=Path(__file__).parents[2],
                            start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"echo pty-$((40+2)); tty; exit 4\n")
        out = _read_until_closed(master)
        assert proc.wait(10) == 4, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert b"pty-42" in out and b"/dev/pts/" in out
