"""``fleetpy`` entry point: the click group, fleetctl's global options (each also from ``FLEETCTL_<NAME>``), command
prefixes (``fleetpy list-m``), ``help``/``version``, and the registration of every command.

Edge of the CLI. The group builds one ``ClientConfig`` and hands it to the commands on the context (no globals);
``exits.run`` wraps every invocation, so errors become one line and an exit status. Other issues' commands are
registered here too: ``lab``, ``status``/``journal``/``ssh`` (``cmd_remote``) and the hidden ``fd-forward``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from fleetpy import __version__
from fleetpy.cli import cmd_cat, cmd_explain, cmd_fdforward, cmd_list, cmd_remote, cmd_units, cmd_verify, exits
from fleetpy.cli.context import CliEnv
from fleetpy.cli.lab import lab
from fleetpy.cli.options import FleetCommand, rewrite_bool_values
from fleetpy.client.config import (
    API_SOCKET,
    DEFAULT_ENDPOINT,
    DEFAULT_KNOWN_HOSTS_FILE,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_SSH_TIMEOUT,
    DEFAULT_SSH_USERNAME,
    ClientConfig,
    choose_driver,
)
from fleetpy.registry.keys import DEFAULT_PREFIX

PROG = "fleetpy"


class FleetGroup(click.Group):
    """cobra's behaviour: unambiguous prefixes select a command, ambiguous ones list the candidates, unknown ones
    are a one-line usage error; every invocation goes through ``exits.run``."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        matches = [name for name in self.list_commands(ctx) if name.startswith(cmd_name)]
        if len(matches) == 1:
            return super().get_command(ctx, matches[0])
        if len(matches) > 1:
            raise click.UsageError(f'ambiguous command "{cmd_name}" for "{PROG}": could be {", ".join(matches)}',
                                   ctx)
        return None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        name = args[0]
        command = self.get_command(ctx, name)
        if command is None:
            raise click.UsageError(f'unknown command "{name}" for "{PROG}"', ctx)
        return command.name, command, args[1:]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rewrite_bool_values(self.get_params(ctx), args))

    def hoist_global_options(self, argv: list[str]) -> list[str]:
        """cobra's persistent flags work after the command too (``fleetpy list-units --endpoint X``): move global
        options found after one of fleetpy's own commands in front of it, where click expects them."""
        takes_value = {opt: not param.is_flag for param in self.params if isinstance(param, click.Option)
                       for opt in param.opts + param.secondary_opts if opt.startswith("--")}
        takes_value.pop("--help", None)
        takes_value.pop("--version", None)
        i = 0
        while i < len(argv) and argv[i] != "--" and argv[i].startswith("-"):
            name, eq, _ = argv[i].partition("=")
            i += 2 if takes_value.get(name) and not eq else 1
        if i >= len(argv) or argv[i] == "--":
            return argv
        try:
            command = self.get_command(click.Context(self), argv[i])
        except click.UsageError:
            return argv
        if not isinstance(command, FleetCommand):
            return argv
        head, rest, tail = argv[:i], [], argv[i + 1 :]
        j = 0
        while j < len(tail) and tail[j] != "--":
            name, eq, _ = tail[j].partition("=")
            if name in takes_value:
                width = 2 if takes_value[name] and not eq else 1
                head.extend(tail[j : j + width])
                j += width
                continue
            rest.append(tail[j])
            j += 1
        return [*head, argv[i], *rest, *tail[j:]]

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        env = extra.setdefault("obj", CliEnv())
        argv = self.hoist_global_options(list(sys.argv[1:] if args is None else args))

        def invoke() -> object:
            return super(FleetGroup, self).main(argv, prog_name or PROG, complete_var, standalone_mode=False,
                                                windows_expand_args=windows_expand_args, **extra)

        try:
            status = exits.run(invoke, debug=lambda: bool(getattr(env, "config", None) and env.config.debug))
        finally:
            if isinstance(env, CliEnv):
                env.close()
        if standalone_mode:
            sys.exit(status)
        return status


def _debug_logging(ctx: click.Context) -> None:
    """--debug: every registry request is logged on stderr at DEBUG: etcd's (logger ``fleetpy.registry``) and the
    API driver's HTTP requests (logger ``fleetpy.client``)."""
    loggers = [logging.getLogger(name) for name in ("fleetpy.registry", "fleetpy.client")]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("DEBUG %(name)s: %(message)s"))
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)

    def undo() -> None:
        for logger, level in zip(loggers, previous, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)

    ctx.call_on_close(undo)


def _env(name: str) -> str:
    return "FLEETCTL_" + name.upper().replace("-", "_")


@click.group(PROG, cls=FleetGroup, invoke_without_command=True, no_args_is_help=False,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(__version__, "--version", "-v", message=f"{PROG} version %(version)s")
@click.option("--endpoint", default=None, envvar=_env("endpoint"), metavar="URL[,URL...]",
              help=f"The fleet API URL (unix:// or http(s)://) [default: {API_SOCKET}], or with --driver=etcd "
                   f"the etcd endpoints, comma-separated [default: {DEFAULT_ENDPOINT}].")
@click.option("--driver", default=None, envvar=_env("driver"), metavar="api|etcd",
              help="Talk to the fleet HTTP API of a fleetpyd (api) or to etcd directly (etcd) [default: api, or etcd "
                   "when the endpoint's port is 2379 or 4001].")
@click.option("--etcd-key-prefix", default=DEFAULT_PREFIX, envvar=_env("etcd-key-prefix"), show_default=True,
              help="Keyspace for fleet data in etcd (development use only).")
@click.option("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT, envvar=_env("request-timeout"),
              show_default=True, help="Timeout in seconds of each request to the cluster.")
@click.option("--debug", is_flag=True, envvar=_env("debug"),
              help="Log every registry request to stderr; show tracebacks of errors.")
@click.option("--tunnel", default="", envvar=_env("tunnel"), metavar="HOST[:PORT]",
              help="Reach the cluster through an SSH bastion (port 22 unless given).")
@click.option("--ssh-username", default=DEFAULT_SSH_USERNAME, envvar=_env("ssh-username"), show_default=True,
              help="Username for SSH connections.")
@click.option("--ssh-timeout", type=float, default=DEFAULT_SSH_TIMEOUT, envvar=_env("ssh-timeout"),
              show_default=True, help="Timeout in seconds of SSH connection setup.")
@click.option("--known-hosts-file", default=DEFAULT_KNOWN_HOSTS_FILE, envvar=_env("known-hosts-file"),
              show_default=True, help="File of SSH host key fingerprints.")
@click.option("--strict-host-key-checking/--no-strict-host-key-checking", default=True,
              envvar=_env("strict-host-key-checking"), show_default=True, help="Verify SSH host keys.")
@click.option("--ca-file", "--etcd-cafile", "ca_file", default="", envvar=_env("ca-file"),
              help="CA file for TLS to etcd.")
@click.option("--cert-file", "--etcd-certfile", "cert_file", default="", envvar=_env("cert-file"),
              help="Client certificate file for TLS to etcd.")
@click.option("--key-file", "--etcd-keyfile", "key_file", default="", envvar=_env("key-file"),
              help="Client key file for TLS to etcd.")
@click.option("--remote-fleetpy", default="fleetpy", envvar=_env("remote-fleetpy"), show_default=True,
              help="With --tunnel and the API's unix socket: the fleetpy command on the tunnel host, run as "
                   "'fleetpy fd-forward SOCKET' (fleetctl runs 'fleetctl fd-forward').")
@click.pass_context
def cli(ctx: click.Context, endpoint: str | None, driver: str | None, etcd_key_prefix: str, request_timeout: float,
        debug: bool, tunnel: str, ssh_username: str, ssh_timeout: float, known_hosts_file: str,
        strict_host_key_checking: bool, ca_file: str, cert_file: str, key_file: str, remote_fleetpy: str) -> None:
    """fleetpy: fleet (CoreOS) for systemd clusters on etcd; a drop-in fleetctl.

    Every global option can also be set with FLEETCTL_<NAME> (e.g. FLEETCTL_ENDPOINT); the command line wins.
    Commands may be abbreviated to any unambiguous prefix (fleetpy list-m)."""
    env = ctx.ensure_object(CliEnv)
    chosen, endpoint = choose_driver(driver, endpoint)
    env.config = ClientConfig(
        endpoint=endpoint, driver=chosen, etcd_key_prefix=etcd_key_prefix,
        request_timeout=request_timeout, debug=debug, tunnel=tunnel, ssh_username=ssh_username,
        ssh_timeout=ssh_timeout, known_hosts_file=known_hosts_file,
        strict_host_key_checking=strict_host_key_checking, ca_file=ca_file, cert_file=cert_file, key_file=key_file,
        remote_fleetpy=remote_fleetpy,
    )
    if debug:
        _debug_logging(ctx)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)


@cli.command("version", short_help="Print the version and exit")
def version() -> None:
    """Print the version and exit."""
    click.echo(f"{PROG} version {__version__}")


@cli.command("help", short_help="Help about any command")
@click.argument("command", nargs=-1)
@click.pass_context
def help_(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Help about any command."""
    parent = ctx.parent
    assert parent is not None
    if not command:
        click.echo(parent.get_help())
        return
    group = parent.command
    assert isinstance(group, FleetGroup)
    target = group.get_command(parent, command[0])
    if target is None:
        raise click.UsageError(f'unknown command "{command[0]}" for "{PROG}"', ctx)
    with click.Context(target, info_name=target.name, parent=parent) as sub:
        click.echo(target.get_help(sub))


for _module in (cmd_units, cmd_list, cmd_cat, cmd_verify, cmd_explain):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
cli.add_command(lab)
cli.add_command(cmd_remote.status)
cli.add_command(cmd_remote.journal)
cli.add_command(cmd_remote.ssh)
cli.add_command(cmd_fdforward.fd_forward)


def main(argv: list[str] | None = None) -> int:
    status: int = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    return status


if __name__ == "__main__":
    sys.exit(main())
