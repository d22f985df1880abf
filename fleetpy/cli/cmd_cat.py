"""``cat UNIT``: print a unit file as the registry stores it (fleet's canonical form, no extra newline).

Edge of the CLI.
"""

from __future__ import annotations

import click

from fleetpy.cli.context import CliEnv, pass_env
from fleetpy.cli.options import FleetCommand
from fleetpy.client.errors import UnitNotFound
from fleetpy.errors import UsageError
from fleetpy.model.names import mangle


@click.command("cat", cls=FleetCommand,
               short_help="Output the contents of a submitted unit")
@click.argument("units", nargs=-1, metavar="UNIT")
@pass_env
def cat(env: CliEnv, units: tuple[str, ...]) -> None:
    """Output the contents of a submitted unit file (canonical form: comments and blank lines are not stored)."""
    if len(units) != 1:
        raise UsageError("One unit file must be provided")
    name = mangle(units[0])
    unit = env.client().unit(name)
    if unit is None:
        raise UnitNotFound(f"Unit {name} not found")
    click.echo(unit.unit_file.contents, nl=False)


COMMANDS = [cat]
