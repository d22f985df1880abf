"""``fleetpy lab``: a multi-node cluster of real systemd nodes on one machine (commands over ``fleetpy.lab.Lab``).

Each command parses, calls the ``Lab`` facade and prints; no lab logic lives here. Every ``LabError`` (any
``FleetError``) becomes ``Error: <message>`` on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import functools
import shlex
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fleetpy.errors import FleetError, LabError

DEFAULT_NAME = "fleetpy"
"""``fleetpy.lab.state.DEFAULT_NAME`` (equal by test): importing it here would load the lab package at each start-up."""

if TYPE_CHECKING:  # the lab package is imported when a lab command runs, not at every fleetpy start-up
    from fleetpy.lab import Lab

F = TypeVar("F", bound=Callable[..., Any])

NODE_ACTIONS = ("poweroff", "kill", "start", "cut", "heal")
ETCD_ACTIONS = ("stop", "start")


def lab_options(func: F) -> F:
    """``--name`` and ``--state-dir`` on every command; errors become one ``Error:`` line and exit 1."""

    @click.option("--name", default=DEFAULT_NAME, show_default=True, help="Lab name (different names coexist).")
    @click.option("--state-dir", type=click.Path(file_okay=False), default=None,
                  help="The lab's own directory [default: $FLEETPY_LAB_DIR/NAME or /var/lib/fleetpy/lab/NAME].")
    @functools.wraps(func)
    def wrapper(*args: Any, name: str, state_dir: str | None, **kwargs: Any) -> Any:
        try:
            from fleetpy.lab import Lab

            return func(*args, lab=Lab(name, state_dir), **kwargs)
        except FleetError as err:
            raise click.ClickException(str(err)) from err

    return wrapper  # type: ignore[return-value]


def parse_metadata(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``node1:role=db`` or ``node1:role=db,disk=ssd`` (repeatable) -> {"node1": {"role": "db", ...}}."""
    out: dict[str, dict[str, str]] = {}
    for value in values:
        node, sep, pairs = value.partition(":")
        if not sep or not node or not pairs:
            raise click.BadParameter(f"{value!r}: expected NODE:KEY=VALUE[,KEY=VALUE...]", param_hint="--metadata")
        for pair in pairs.split(","):
            key, eq, val = pair.partition("=")
            if not eq or not key:
                raise click.BadParameter(f"{value!r}: {pair!r} is not KEY=VALUE", param_hint="--metadata")
            out.setdefault(node, {})[key] = val
    return out


def _strip_dashes(command: tuple[str, ...]) -> list[str]:
    """click keeps the ``--`` that follows NODE (options must come before NODE); drop it."""
    return list(command[1:] if command[:1] == ("--",) else command)


@click.group()
def lab() -> None:
    """Run a local multi-node lab: real systemd nodes, etcd, sshd (needs root; see docs/lab.md)."""


@lab.command()
@lab_options
@click.option("--nodes", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--etcd-members", type=click.Choice(["1", "3"]), default="1", show_default=True)
@click.option("--metadata", multiple=True, metavar="NODE:KEY=VALUE[,...]", help="Node metadata (repeatable).")
@click.option("--agents/--no-agents", default=True, show_default=True, help="Start fleetpyd in every node.")
@click.option("--agent-ttl", default=None, metavar="DURATION", help="FLEET_AGENT_TTL for the agents [default: 30s].")
@click.option("--subnet", default=None, metavar="CIDR", help="A private /24 for the lab [default: a free 10.x.y.0/24].")
def up(lab: Lab, nodes: int, etcd_members: str, metadata: tuple[str, ...], agents: bool, agent_ttl: str | None,
       subnet: str | None) -> None:
    """Create the lab: bridge, etcd, NODES systemd nodes with sshd (and fleetpyd)."""
    lab.up(nodes=nodes, etcd_members=int(etcd_members), metadata=parse_metadata(metadata), agents=agents,
           agent_ttl=agent_ttl, subnet=subnet, progress=click.echo)
    click.echo(f"lab {lab.name} is up ({nodes} nodes). Point fleetctl at it with: "
               f"eval \"$(fleetpy lab env --name {lab.name})\"")


@lab.command()
@lab_options
def down(lab: Lab) -> None:
    """Remove the lab: nodes, cgroups, netns, veths, bridge, etcd and the state directory."""
    if lab.down():
        click.echo(f"lab {lab.name} removed")
    else:
        click.echo(f"lab {lab.name} is not up (nothing to do)")


@lab.command()
@lab_options
def status(lab: Lab) -> None:
    """Show nodes (systemd state, link, fleetpyd) and etcd members."""
    from fleetpy.lab.status import render

    click.echo(render(lab.status()))


@lab.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@lab_options
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(lab: Lab, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE (nsenter); its exit code is passed through.  e.g. lab exec node1 -- hostname"""
    argv = _strip_dashes(command)
    if not argv:
        raise click.UsageError("no command given: fleetpy lab exec NODE -- COMMAND...")
    proc = lab.exec(node, argv, capture=False, timeout=None)
    click.get_current_context().exit(proc.returncode)


@lab.command("ssh", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@lab_options
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh_cmd(lab: Lab, node: str, command: tuple[str, ...]) -> None:
    """ssh into NODE as root with the lab key and strict host key checking (optionally run COMMAND)."""
    from fleetpy.lab.ssh import ssh_argv

    argv = ssh_argv(lab.paths, lab.record.node(node), _strip_dashes(command))
    try:
        proc = subprocess.run(argv, check=False)
    except FileNotFoundError as err:
        raise LabError("ssh not found: apt-get install openssh-client") from err
    click.get_current_context().exit(proc.returncode)


@lab.command()
@lab_options
def env(lab: Lab) -> None:
    """Print `export FLEETCTL_...` lines for this lab (use with eval)."""
    for key, value in lab.env().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@lab.command("node")
@lab_options
@click.argument("action", type=click.Choice(NODE_ACTIONS))
@click.argument("node")
def node_cmd(lab: Lab, action: str, node: str) -> None:
    """Faults: poweroff (clean), kill (SIGKILL of PID 1), start (same identity), cut / heal its link."""
    getattr(lab, action)(node)
    click.echo(f"{node}: {action} done")


@lab.command("etcd")
@lab_options
@click.argument("action", type=click.Choice(ETCD_ACTIONS))
@click.argument("member")
def etcd_cmd(lab: Lab, action: str, member: str) -> None:
    """Stop or start one etcd member (MEMBER: etcd1 or 1)."""
    if action == "stop":
        lab.etcd_stop(member)
    else:
        lab.etcd_start(member)
    click.echo(f"etcd member {member}: {action} done")
