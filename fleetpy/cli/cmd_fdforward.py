"""``fleetpy fd-forward SOCKET``: the click command over ``fleetpy.api.fdforward`` (used remotely by --tunnel).

CLI layer: parse, call, report. Hidden from the help listing, as fleetctl keeps it out of its usage text.
"""

from __future__ import annotations

import sys

import click

from fleetpy.api.fdforward import forward
from fleetpy.errors import FleetError


@click.command("fd-forward", hidden=True, short_help="Proxy stdin and stdout to a unix domain socket")
@click.argument("socket_path", metavar="SOCKET")
def fd_forward(socket_path: str) -> None:
    """Proxy standard input and output to the unix domain socket SOCKET."""
    try:
        forward(socket_path, stdin=sys.stdin.fileno(), stdout=sys.stdout.fileno())
    except FleetError as err:
        click.echo(f"Error: {err}", err=True)
        sys.exit(1)
