"""Running a command on a fleet machine: locally when it is this machine, else over SSH (through the tunnel host).

Pure command-line builders (``systemctl_status``, ``journalctl``, ``quote_command``: every argument is
``shlex.quote``d, so a unit name can never start a second remote command) and the I/O that runs them
(``MachineRunner``), streaming output as it comes. Local commands run without a shell.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
from collections.abc import Sequence
from typing import IO, BinaryIO

from fleetpy.errors import FleetError
from fleetpy.model.records import MachineState
from fleetpy.ssh.client import DEFAULT_PORT, SSHConfig, SSHConnection, connect
from fleetpy.ssh.tunnel import Tunnel

MACHINE_ID_FILE = "/etc/machine-id"


def quote_command(argv: Sequence[str]) -> str:
    """An argument vector as one shell command line that runs exactly that vector."""
    return " ".join(shlex.quote(arg) for arg in argv)


def systemctl_status(unit: str) -> list[str]:
    """fleetctl status: ``systemctl status -l UNIT`` (``--`` keeps a unit name from reading as an option)."""
    return ["systemctl", "status", "-l", "--", unit]


def journalctl(unit: str, *, lines: int = 10, follow: bool = False, output: str = "short",
               sudo: bool = False) -> list[str]:
    """fleetctl journal: ``[sudo] journalctl --unit U --no-pager -n N --output MODE [-f]``."""
    argv = ["journalctl", "--unit", unit, "--no-pager", "-n", str(lines), "--output", output]
    if follow:
        argv.append("-f")
    return ["sudo", *argv] if sudo else argv


def local_machine_id(path: str = MACHINE_ID_FILE) -> str:
    """This machine's ID (``/etc/machine-id``), "" when unreadable."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def run_local(argv: Sequence[str], *, stdout: BinaryIO, stderr: BinaryIO) -> int:
    """Run ``argv`` here (no shell), streaming its output; Ctrl-C stops it and propagates."""
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=0)
    except OSError as err:
        raise FleetError(f"cannot run {argv[0]}: {err.strerror or err}") from err
    assert proc.stdout is not None and proc.stderr is not None
    errors = threading.Thread(target=_copy_file, args=(proc.stderr, stderr), daemon=True)
    errors.start()
    try:
        _copy_file(proc.stdout, stdout)
        errors.join()
        return proc.wait()
    except BaseException:
        proc.terminate()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
        proc.stderr.close()


def _copy_file(source: IO[bytes], out: BinaryIO) -> None:
    while data := source.read(65536):
        out.write(data)
        out.flush()


class MachineRunner:
    """Runs commands on registry machines: here when the ID is ours, else over SSH to its PublicIP (ssh-in-ssh
    through ``tunnel`` when given). Connections are reused per address; close the runner when done."""

    def __init__(self, config: SSHConfig, *, port: int = DEFAULT_PORT, tunnel: Tunnel | None = None,
                 local_id: str | None = None) -> None:
        self.config = config
        self.port = port
        self.tunnel = tunnel
        self.local_id = local_machine_id() if local_id is None else local_id
        self._connections: dict[str, SSHConnection] = {}

    def is_local(self, machine: MachineState) -> bool:
        return bool(self.local_id) and machine.id == self.local_id

    def connection(self, machine: MachineState) -> SSHConnection:
        """An SSH connection to the machine's PublicIP (TunnelError when it has none or cannot be reached)."""
        if not machine.public_ip:
            raise FleetError(f"machine {machine.id} has no public IP to SSH to")
        conn = self._connections.get(machine.public_ip)
        if conn is None:
            via = self.tunnel.connection if self.tunnel is not None else None
            conn = connect(machine.public_ip, self.port, self.config, via=via)
            self._connections[machine.public_ip] = conn
        return conn

    def run(self, machine: MachineState, argv: Sequence[str], *, stdout: BinaryIO, stderr: BinaryIO) -> int:
        """Run the argument vector on the machine; returns its exit code."""
        if self.is_local(machine):
            return run_local(argv, stdout=stdout, stderr=stderr)
        return self.connection(machine).run(quote_command(argv), stdout=stdout, stderr=stderr)

    def close(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            conn.close()
