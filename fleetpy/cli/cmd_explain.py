"""``explain UNIT`` (fleetpy's own): machine by machine, can the unit go there and why.

Edge of the CLI: the verdicts are the engine's own (``fleetpy.engine.explain`` via the client); this renders them
as a tab-aligned table like the list commands.
"""

from __future__ import annotations

import click

from fleetpy.cli import options
from fleetpy.cli.context import CliEnv, pass_env
from fleetpy.cli.render import table
from fleetpy.cli.tables import machine_legend
from fleetpy.client.api import Verdict
from fleetpy.model.names import mangle


@click.command("explain", cls=options.FleetCommand,
               short_help="Explain where a unit can be scheduled, machine by machine")
@options.no_legend
@options.full
@click.argument("unit", metavar="UNIT")
@pass_env
def explain(env: CliEnv, no_legend: bool, full: bool, unit: str) -> None:
    """Explain where UNIT can be scheduled: one line per live machine, sorted by machine ID, saying whether the
    unit can run there and why (metadata, MachineID, MachineOf peers, Conflicts, Replaces, global units)."""
    client = env.client()
    name = mangle(unit)
    verdicts = client.explain(name)
    if not verdicts:
        click.echo("No machines in the cluster", err=True)
        return
    machines = client.machine_map()

    def cell(verdict: Verdict, field: str) -> str:
        if field == "machine":
            return machine_legend(verdict.machine_id, machines, full=full)
        if field == "able":
            return "yes" if verdict.ok else "no"
        return verdict.reason or "-"

    click.echo(table(["machine", "able", "reason"], verdicts, cell, legend=not no_legend), nl=False)
    reason = client.reasons().get(name)
    if reason:
        click.echo(f"Engine: {reason}")


COMMANDS = [explain]
