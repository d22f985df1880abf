"""The lifecycle commands: ``submit``, ``load``, ``start``, ``stop``, ``unload``, ``destroy``, ``restart``.

Edge of the CLI: parse the flags, call ``fleetpy.client.lifecycle``, nothing else. Unit arguments are names or
paths (fleet-reference 1.6): a unit already in the registry is used as is, else the local file, else (for an
instance ``foo@bar.service``) the template ``foo@.service`` from the registry or next to the argument.
"""

from __future__ import annotations

import click

from fleetpy.cli import options
from fleetpy.cli.context import CliEnv, pass_env
from fleetpy.client.wait import Blocking

units_argument = click.argument("units", nargs=-1, metavar="UNIT...")


@click.command("submit", cls=options.FleetCommand,
               short_help="Upload one or more units to the cluster without starting them")
@options.replace
@units_argument
@pass_env
def submit(env: CliEnv, replace: bool, units: tuple[str, ...]) -> None:
    """Upload one or more units to the cluster without starting them (target state inactive)."""
    env.lifecycle().submit(units, replace=replace)


@click.command("load", cls=options.FleetCommand,
               short_help="Schedule one or more units in the cluster, first submitting them if necessary.")
@options.replace
@options.blocking("loaded")
@units_argument
@pass_env
def load(env: CliEnv, replace: bool, no_block: bool, block_attempts: int, units: tuple[str, ...]) -> None:
    """Schedule one or more units in the cluster, first submitting them if necessary (target state loaded).

    Waits until each unit is loaded on its machine unless --no-block is given. Global units never wait."""
    blocking = Blocking.of(no_block=no_block, attempts=block_attempts)
    env.lifecycle().load(units, replace=replace, blocking=blocking)


@click.command("start", cls=options.FleetCommand,
               short_help="Instruct systemd to start one or more units in the cluster, first submitting and loading "
                          "if necessary.")
@options.replace
@options.blocking("started")
@units_argument
@pass_env
def start(env: CliEnv, replace: bool, no_block: bool, block_attempts: int, units: tuple[str, ...]) -> None:
    """Instruct systemd to start one or more units in the cluster, first submitting them if necessary (target
    state launched).

    Waits until each unit is launched and systemd reports it active, unless --no-block is given. Global units
    never wait. While a unit cannot be placed, the engine's reason is shown."""
    blocking = Blocking.of(no_block=no_block, attempts=block_attempts)
    env.lifecycle().start(units, replace=replace, blocking=blocking)


@click.command("stop", cls=options.FleetCommand,
               short_help="Instruct systemd to stop one or more units in the cluster.")
@options.blocking("stopped")
@units_argument
@pass_env
def stop(env: CliEnv, no_block: bool, block_attempts: int, units: tuple[str, ...]) -> None:
    """Instruct systemd to stop one or more units in the cluster; they stay scheduled (target state loaded)."""
    env.lifecycle().stop(units, blocking=Blocking.of(no_block=no_block, attempts=block_attempts))


@click.command("unload", cls=options.FleetCommand,
               short_help="Unschedule one or more units in the cluster.")
@options.blocking("unloaded")
@units_argument
@pass_env
def unload(env: CliEnv, no_block: bool, block_attempts: int, units: tuple[str, ...]) -> None:
    """Unschedule one or more units in the cluster (target state inactive)."""
    env.lifecycle().unload(units, blocking=Blocking.of(no_block=no_block, attempts=block_attempts))


@click.command("destroy", cls=options.FleetCommand,
               short_help="Destroy one or more units in the cluster")
@options.blocking("destroyed")
@units_argument
@pass_env
def destroy(env: CliEnv, no_block: bool, block_attempts: int, units: tuple[str, ...]) -> None:
    """Destroy one or more units in the cluster: stop them and remove them from the registry.

    The registry deletion is immediate, so there is nothing to wait for (--no-block and --block-attempts are
    accepted for compatibility)."""
    del no_block, block_attempts
    env.lifecycle().destroy(units)


@click.command("restart", cls=options.FleetCommand,
               short_help="Instruct systemd to rolling restart one or more units in the cluster.")
@options.blocking("restarted", no_block=False)
@units_argument
@pass_env
def restart(env: CliEnv, block_attempts: int, units: tuple[str, ...]) -> None:
    """Restart one or more units in the cluster, unit by unit: a launched unit is stopped (target loaded, waited
    for) then started (target launched, waited for); a loaded unit is started; an inactive unit is refused.

    Global units are restarted through the registry too (fleet 1.0 used SSH): their target state goes to loaded,
    fleetpy waits until no machine reports them active, then sets launched."""
    env.lifecycle().restart(units, blocking=Blocking.of(attempts=block_attempts))


COMMANDS = [submit, load, start, stop, unload, destroy, restart]
