"""``status``, ``journal`` and ``ssh``: commands that act on the machine hosting a unit (fleetctl's SSH commands).

CLI layer: parse, look up the unit/machine through the client, run ``systemctl``/``journalctl``/a shell there
(locally when the machine is this one, else over SSH, ssh-in-ssh through ``--tunnel``), pass the exit code on.
Messages are fleetctl's; a connection failure is a FleetError, shown by ``exits.run`` as one line naming the host
and the cause (exit 1); Ctrl-C (following a journal, say) exits 130 quietly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fleetpy.cli.context import CliEnv
from fleetpy.cli.exits import one_line
from fleetpy.cli.options import FleetCommand
from fleetpy.client.api import FleetClient
from fleetpy.client.connect import connect
from fleetpy.model.names import mangle
from fleetpy.model.records import JobState, MachineState

if TYPE_CHECKING:  # paramiko costs ~0.2 s to import: only the commands that use SSH pay for it
    from fleetpy.ssh.client import SSHConfig
    from fleetpy.ssh.remote import MachineRunner
    from fleetpy.ssh.tunnel import Tunnel

DEFAULT_PORT = 22

F = TypeVar("F", bound=Callable[..., Any])


def _ssh_options(fn: F) -> F:
    """``--ssh-port`` (fleetctl's per-command flag) and fleetpy's ``--ssh-identity``."""
    fn = click.option("--ssh-port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
                      help="Port of the machines' SSH servers.")(fn)
    return click.option("--ssh-identity", default="", envvar="FLEETCTL_SSH_IDENTITY", metavar="FILE",
                        help="Private key file for SSH, tried before ssh-agent's keys and ~/.ssh's.")(fn)


class CommandFailed(Exception):
    """Stop the command: print ``message`` (if any) on stderr and exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Session:
    client: FleetClient
    runner: MachineRunner
    ssh: SSHConfig
    tunnel: Tunnel | None


@contextlib.contextmanager
def _session(ctx: click.Context, ssh_port: int, ssh_identity: str) -> Iterator[_Session]:
    """The client, and a runner for machines, sharing ONE SSH connection to the tunnel host when tunnelled."""
    from fleetpy.ssh.remote import MachineRunner
    from fleetpy.ssh.tunnel import open_tunnel, ssh_config_for

    env = ctx.find_object(CliEnv)
    config = env.config if env is not None else CliEnv().config
    ssh = ssh_config_for(config)
    if ssh_identity:
        ssh = dataclasses.replace(ssh, identity=ssh_identity)
    tunnel = open_tunnel(config.tunnel, ssh, endpoints=config.endpoints) if config.tunnel else None
    try:
        client = connect(config, transport_factory=(lambda _c: tunnel) if tunnel is not None else None)
    except BaseException:
        if tunnel is not None:
            tunnel.close()
        raise
    runner = MachineRunner(ssh, port=ssh_port, tunnel=tunnel)
    try:
        yield _Session(client, runner, ssh, tunnel)
    finally:
        runner.close()
        client.close()
        if tunnel is not None:
            tunnel.close()


def _run(ctx: click.Context, body: Callable[[], int]) -> None:
    """Run a command body, mapping its outcome to output and an exit code in one place."""
    try:
        code = body()
    except CommandFailed as err:
        if str(err):
            click.echo(str(err), err=True)
        ctx.exit(err.code)
    except KeyboardInterrupt:
        ctx.exit(130)
    ctx.exit(code)


def _machine(session: _Session, machine_id: str, unit: str) -> MachineState:
    machine = session.client.machine_map().get(machine_id)
    if machine is None:
        raise CommandFailed(f"Unable to find machine {machine_id} hosting unit {unit}.")
    return machine


@click.command("status", cls=FleetCommand)
@_ssh_options
@click.argument("units", nargs=-1)
@click.pass_context
def status(ctx: click.Context, ssh_port: int, ssh_identity: str, units: tuple[str, ...]) -> None:
    """Output the status of one or more units in the cluster (systemctl status on the hosting machine)."""
    _run(ctx, lambda: _status(ctx, ssh_port, ssh_identity, [mangle(u) for u in units]))


def _status(ctx: click.Context, ssh_port: int, ssh_identity: str, names: list[str]) -> int:
    from fleetpy.ssh import remote
    if not names:
        raise CommandFailed("No units given")
    out, err = sys.stdout.buffer, sys.stderr.buffer
    with _session(ctx, ssh_port, ssh_identity) as session:
        targets: list[tuple[str, list[MachineState]]] = []
        for name in names:
            unit = session.client.unit(name)
            if unit is None:
                raise CommandFailed(f"Unit {one_line(name)} does not exist.")
            if unit.is_global:
                machines = [_machine(session, s.machine_id, name) for s in session.client.unit_states(name)]
                targets.append((name, machines))
                continue
            scheduled = session.client.scheduled_unit(name)
            if scheduled is None or scheduled.target_machine is None or \
                    scheduled.current_state is JobState.INACTIVE:
                raise CommandFailed(f"Unit {name} does not appear to be loaded.")
            targets.append((name, [_machine(session, scheduled.target_machine, name)]))
        first = True
        for name, machines in targets:
            for machine in machines:
                if not first:  # a blank line between outputs, as fleetctl
                    out.write(b"\n")
                    out.flush()
                first = False
                code = session.runner.run(machine, remote.systemctl_status(name), stdout=out, stderr=err)
                if code != 0:
                    return code
    return 0


@click.command("journal", cls=FleetCommand)
@click.option("--lines", type=int, default=10, show_default=True, help="Number of recent log lines to return.")
@click.option("-f", "--follow", is_flag=True, help="Continuously print new entries as they are appended.")
@click.option("--output", default="short", show_default=True, help="journalctl output mode (short, json, cat...).")
@click.option("--sudo", is_flag=True, help="Run journalctl with sudo on the remote machine.")
@_ssh_options
@click.argument("units", nargs=-1)
@click.pass_context
def journal(ctx: click.Context, lines: int, follow: bool, output: str, sudo: bool, ssh_port: int,
            ssh_identity: str, units: tuple[str, ...]) -> None:
    """Print the journal of a unit in the cluster to stdout."""
    _run(ctx, lambda: _journal(ctx, ssh_port, ssh_identity, units, lines=lines, follow=follow, output=output,
                               sudo=sudo))


def _journal(ctx: click.Context, ssh_port: int, ssh_identity: str, units: tuple[str, ...], *, lines: int,
             follow: bool, output: str, sudo: bool) -> int:
    from fleetpy.ssh import remote
    if len(units) != 1:
        raise CommandFailed("One unit file must be provided.")
    name = mangle(units[0])
    with _session(ctx, ssh_port, ssh_identity) as session:
        unit = session.client.unit(name)
        if unit is None:
            raise CommandFailed(f"Unit {one_line(name)} does not exist.")
        if unit.is_global:
            raise CommandFailed(f"Unable to retrieve journal of global unit {name}.")
        scheduled = session.client.scheduled_unit(name)
        if scheduled is None or scheduled.target_machine is None or scheduled.current_state is JobState.INACTIVE:
            raise CommandFailed(f"Unit {name} does not appear to be loaded.")
        machine = _machine(session, scheduled.target_machine, name)
        argv = remote.journalctl(name, lines=lines, follow=follow, output=output, sudo=sudo)
        return session.runner.run(machine, argv, stdout=sys.stdout.buffer,
                                 stderr=sys.stderr.buffer)


@click.command("ssh", cls=FleetCommand,
               context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--machine", "-m", "machine_flag", default="", help="Open SSH connection to a specific machine.")
@click.option("--unit", "-u", "unit_flag", default="", help="Open SSH connection to machine running provided unit.")
@click.option("-A", "--forward-agent", is_flag=True, help="Forward local ssh-agent to target machine.")
@_ssh_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx: click.Context, machine_flag: str, unit_flag: str, forward_agent: bool, ssh_port: int,
        ssh_identity: str, args: tuple[str, ...]) -> None:
    """Open interactive shell on a machine in the cluster (or run a command there).

    The argument is a machine-ID prefix or a unit (--machine/--unit to say which); words after it (or after --)
    are one remote command line, run by the remote shell as ssh(1) does; its exit code is fleetpy's."""
    _run(ctx, lambda: _ssh(ctx, machine_flag, unit_flag, forward_agent, ssh_port, ssh_identity, list(args)))


def _ssh(ctx: click.Context, machine_flag: str, unit_flag: str, forward_agent: bool, ssh_port: int,
         ssh_identity: str, args: list[str]) -> int:
    if machine_flag and unit_flag:
        raise CommandFailed("Both machine and unit flags provided, please specify only one.")
    with _session(ctx, ssh_port, ssh_identity) as session:
        try:
            machine: MachineState | None
            if machine_flag:
                machine = _find_machine(session.client, machine_flag)
            elif unit_flag:
                machine = _find_unit_machine(session.client, unit_flag)
            else:
                if not args:
                    raise _NotFound("one machine or unit must be provided")
                machine, args = _lookup(session.client, args[0]), args[1:]
        except _NotFound as err:
            raise CommandFailed(f"Unable to proceed: {err}") from err
        if machine is None or not machine.public_ip:
            raise CommandFailed("Could not determine address of machine.")
        if args and args[0] == "--":
            args = args[1:]
        conn = session.runner.connection(machine)
        if args:  # the words are one command line for the remote shell, as with ssh(1) and fleetctl
            return conn.run(" ".join(args), stdout=sys.stdout.buffer,
                            stderr=sys.stderr.buffer, forward_agent=forward_agent)
        try:
            stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
        except (AttributeError, OSError, ValueError) as err:  # io.UnsupportedOperation is both of the last two
            raise CommandFailed("Failed opening shell over SSH: standard input/output are not files") from err
        return conn.shell(stdin_fd=stdin_fd, stdout_fd=stdout_fd, forward_agent=forward_agent)


class _NotFound(Exception):
    """A lookup failed; the message is fleetctl's."""


def _find_machine(client: FleetClient, prefix: str) -> MachineState:
    matches = [m for m in client.machines() if m.id.startswith(prefix)]
    if len(matches) > 1:
        raise _NotFound("found more than one machine")
    if not matches:
        raise _NotFound("machine does not exist")
    return matches[0]


def _find_unit_machine(client: FleetClient, arg: str) -> MachineState | None:
    name = mangle(arg)
    unit = client.unit(name)
    if unit is None:
        raise _NotFound("unit does not exist")
    if unit.is_global:
        raise _NotFound("global units unsupported")
    scheduled = client.scheduled_unit(name)
    if scheduled is None or scheduled.target_machine is None:
        return None
    return client.machine_map().get(scheduled.target_machine)


def _lookup(client: FleetClient, arg: str) -> MachineState | None:
    """No flag: the argument may be a machine-ID prefix or a unit; both is ambiguous (fleet's words)."""
    machine: MachineState | None = None
    unit_machine: MachineState | None = None
    with contextlib.suppress(_NotFound):
        machine = _find_machine(client, arg)
    with contextlib.suppress(_NotFound):
        unit_machine = _find_unit_machine(client, arg)
    if machine is not None and unit_machine is not None:
        raise _NotFound(f"ambiguous argument, both machine and unit found for `{arg}`.\n"
                        "Please use flag `-m` or `-u` to refine the search")
    if machine is not None:
        return machine
    if unit_machine is not None:
        return unit_machine
    raise _NotFound("could not find matching unit or machine")


COMMANDS = [status, journal, ssh]
