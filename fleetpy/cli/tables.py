"""The columns of the list commands: field name -> how a record becomes that cell (fleetctl's field maps).

Pure. ``list-units`` (unit states), ``list-unit-files`` (units, plus fleetpy's ``reason``) and ``list-machines``.
Machine legends come from the machine list (``abcd1234.../10.0.0.1``; the bare ID when the machine is unknown).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fleetpy.client.api import UnitFileRow
from fleetpy.model.records import MachineState, UnitState

UNITS_FIELDS = ("unit", "machine", "load", "active", "sub", "hash")
UNITS_DEFAULT = "unit,machine,active,sub"
UNIT_FILES_FIELDS = ("unit", "hash", "dstate", "state", "target", "tmachine", "global", "desc", "reason")
UNIT_FILES_DEFAULT = "unit,hash,dstate,state,target"
MACHINES_FIELDS = ("machine", "ip", "metadata")
MACHINES_DEFAULT = "machine,ip,metadata"
TMACHINE_WARNING = 'WARNING: The "tmachine" field is deprecated. Use "target" instead'


def machine_legend(machine_id: str | None, machines: Mapping[str, MachineState], *, full: bool) -> str:
    if not machine_id:
        return "-"
    machine = machines.get(machine_id) or MachineState(id=machine_id)
    return machine.legend(full=full)


def _hash(value: str, full: bool) -> str:
    if not value:
        return "-"
    return value if full else value[:7]


def unit_state_cell(machines: Mapping[str, MachineState], *, full: bool) -> Callable[[UnitState, str], str]:
    def cell(state: UnitState, field: str) -> str:
        if field == "unit":
            return state.name
        if field == "machine":
            return machine_legend(state.machine_id, machines, full=full)
        if field == "load":
            return state.load_state
        if field == "active":
            return state.active_state
        if field == "sub":
            return state.sub_state
        return _hash(state.unit_hash, full)

    return cell


def unit_file_cell(machines: Mapping[str, MachineState], *, full: bool) -> Callable[[UnitFileRow, str], str]:
    def cell(row: UnitFileRow, field: str) -> str:
        unit = row.unit
        if field == "unit":
            return unit.name
        if field == "hash":
            return _hash(unit.hash, full)
        if field == "dstate":
            return unit.target_state.value or "-"
        if field == "state":
            if unit.is_global or row.scheduled is None:
                return "-"
            return row.scheduled.current_state.value
        if field in ("target", "tmachine"):
            if unit.is_global:
                return "global"
            return machine_legend(row.scheduled.target_machine if row.scheduled else None, machines, full=full)
        if field == "global":
            return "true" if unit.is_global else "false"
        if field == "desc":
            return unit.unit_file.description or "-"
        return row.reason or "-"

    return cell


def machine_cell(*, full: bool) -> Callable[[MachineState, str], str]:
    def cell(machine: MachineState, field: str) -> str:
        if field == "machine":
            return machine.id if full else f"{machine.short_id}..."
        if field == "ip":
            return machine.public_ip or "-"
        meta = ",".join(f"{k}={v}" for k, v in sorted(machine.metadata.items()))
        return meta or "-"

    return cell
