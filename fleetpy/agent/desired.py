"""The desired state of one machine: which units should be here, and in which target state.

Pure (fleet ``agent/reconcile.go`` desiredAgentState). A non-global unit is wanted when its ``target`` is this
machine; a global unit when this machine has the metadata it requires. Units are taken in name order and one that
conflicts (in either direction, shell globs) with a unit already chosen is skipped, with the reason kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fleetpy.model.constraints import conflicting_unit, describe_metadata, unmet_metadata
from fleetpy.model.job import Requirements
from fleetpy.model.names import is_valid_name
from fleetpy.model.records import Unit


@dataclass(frozen=True, slots=True)
class Desired:
    """Units wanted here (by name, in name order) and why candidates were left out."""

    units: dict[str, Unit] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def wanted_bodies(machine_id: str, targets: Mapping[str, str | None]) -> list[str]:
    """Units whose body must be read to decide: scheduled here, or unscheduled (they may be global)."""
    return sorted(name for name, target in targets.items() if target is None or target == machine_id)


def desired_units(*, machine_id: str, metadata: Mapping[str, str], units: Iterable[Unit],
                  targets: Mapping[str, str | None]) -> Desired:
    """Compute the desired state of ``machine_id`` from every unit and the schedule (unit -> target machine)."""
    out = Desired()
    chosen: dict[str, Requirements] = {}
    with_conflicts: dict[str, Requirements] = {}  # the chosen units that declare Conflicts
    for unit in sorted(units, key=lambda u: u.name):
        if not is_valid_name(unit.name):
            out.skipped[unit.name] = "not a valid unit name"
            continue
        req = unit.requirements
        if req.is_global:
            unmet = unmet_metadata(metadata, req.metadata)
            if unmet:
                out.skipped[unit.name] = f"global unit: machine lacks metadata {describe_metadata(unmet)}"
                continue
        elif targets.get(unit.name) != machine_id:
            continue
        # only units that declare Conflicts can conflict: check against all chosen, or only those declaring
        other = conflicting_unit(unit.name, req.conflicts, chosen if req.conflicts else with_conflicts)
        if other is not None:
            out.skipped[unit.name] = f"conflicts with {other}"
            continue
        chosen[unit.name] = req
        if req.conflicts:
            with_conflicts[unit.name] = req
        out.units[unit.name] = unit
    return out
