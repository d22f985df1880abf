"""``verify FILE...`` (fleetpy's own): parse and validate unit files without touching etcd.

Edge of the CLI. For each file: the fleet hash on stdout, every warning of ``model.job.warnings_for`` on stderr,
or the one-line error (name rules, parse rules, ``[X-Fleet]`` combinations). Exit 1 when any file is invalid.
"""

from __future__ import annotations

import click

from fleetpy.cli.options import FleetCommand
from fleetpy.client.errors import UnitCreationError
from fleetpy.client.units import load_file, unit_path
from fleetpy.errors import UnitFileError
from fleetpy.model.job import warnings_for
from fleetpy.model.names import mangle


@click.command("verify", cls=FleetCommand,
               short_help="Check unit files without contacting the cluster")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def verify(files: tuple[str, ...]) -> None:
    """Check unit files as submit would, without contacting the cluster: print each file's fleet hash and any
    warning (unknown [X-Fleet] keys, metadata fleet would drop, %i outside templates, legacy option names).

    Replaces fleetctl's deprecated signed-units "verify"."""
    failed = 0
    for arg in files:
        path, name = unit_path(arg), mangle(arg)
        try:
            unit_file = load_file(path, name)
        except UnitCreationError as err:
            failed += 1
            click.echo(str(err), err=True)
            continue
        click.echo(f"{path}: {unit_file.hash}")
        for warning in warnings_for(unit_file, name):
            click.echo(f"{path}: warning: {warning}", err=True)
    if failed:
        raise UnitFileError(f"{failed} of {len(files)} unit file{'s' if len(files) > 1 else ''} invalid")


COMMANDS = [verify]
