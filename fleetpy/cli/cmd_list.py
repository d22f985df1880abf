"""``list-units``, ``list-unit-files``, ``list-machines``: parse, read through the client, render with tabs.

Edge of the CLI: no business logic, output byte-compatible with fleetctl 1.0 (fleetctl-output.md).
"""

from __future__ import annotations

import click

from fleetpy.cli import options, tables
from fleetpy.cli.context import CliEnv, pass_env
from fleetpy.cli.render import parse_fields, table


@click.command("list-units", cls=options.FleetCommand,
               short_help="List the current state of units in the cluster")
@options.no_legend
@options.full
@options.fields(tables.UNITS_DEFAULT, list(tables.UNITS_FIELDS))
@pass_env
def list_units(env: CliEnv, no_legend: bool, full: bool, fields: str) -> None:
    """List the current state of units in the cluster: one line per unit and machine, sorted by unit name then
    machine ID."""
    columns = parse_fields(fields, tables.UNITS_FIELDS)
    client = env.client()
    states = client.unit_states()
    machines = client.machine_map() if "machine" in columns and states else {}
    cell = tables.unit_state_cell(machines, full=full)
    click.echo(table(columns, states, cell, legend=not no_legend), nl=False)


@click.command("list-unit-files", cls=options.FleetCommand,
               short_help="List the units that exist in the cluster.")
@options.no_legend
@options.full
@options.fields(tables.UNIT_FILES_DEFAULT, list(tables.UNIT_FILES_FIELDS))
@pass_env
def list_unit_files(env: CliEnv, no_legend: bool, full: bool, fields: str) -> None:
    """List the units that exist in the cluster, loaded on a machine or not, sorted by name.

    fleetpy adds the field "reason": why the engine could not schedule the unit ("-" when it could)."""
    columns = parse_fields(fields, tables.UNIT_FILES_FIELDS)
    if "tmachine" in columns:
        click.echo(tables.TMACHINE_WARNING, err=True)
    client = env.client()
    rows = client.unit_file_rows(with_reasons="reason" in columns)
    wants_machines = any(c in ("target", "tmachine") for c in columns)
    machines = client.machine_map() if wants_machines and rows else {}
    cell = tables.unit_file_cell(machines, full=full)
    click.echo(table(columns, rows, cell, legend=not no_legend), nl=False)


@click.command("list-machines", cls=options.FleetCommand,
               short_help="Enumerate the current hosts in the cluster")
@options.no_legend
@options.full
@options.fields(tables.MACHINES_DEFAULT, list(tables.MACHINES_FIELDS))
@pass_env
def list_machines(env: CliEnv, no_legend: bool, full: bool, fields: str) -> None:
    """Enumerate the machines present in the cluster, sorted by machine ID."""
    columns = parse_fields(fields, tables.MACHINES_FIELDS)
    machines = env.client().machines()
    click.echo(table(columns, machines, tables.machine_cell(full=full), legend=not no_legend), nl=False)


COMMANDS = [list_units, list_unit_files, list_machines]
