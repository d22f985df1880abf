"""``explain(cluster, unit)``: machine by machine, whether a unit can go there and why (``fleetpy explain UNIT``).

Pure, over the same ClusterState and constraint checks the engine schedules with, so the answer is the
engine's own. The CLI owns the command and the rendering; this owns the verdicts.
"""

from __future__ import annotations

from fleetpy.engine.cluster import ClusterState, Placement, Slot, UnitSpec
from fleetpy.errors import NotFound
from fleetpy.model import constraints


def _global_verdict(slot: Slot, spec: UnitSpec) -> tuple[bool, str]:
    req = spec.requirements
    if spec.name in slot.units:
        return True, "runs here (global unit)"
    unmet = constraints.unmet_metadata(slot.machine.metadata, req.metadata)
    if unmet:
        return False, f"lacks metadata {constraints.describe_metadata(unmet)} (global unit)"
    conflict = constraints.conflict_on(slot, spec.name, req.conflicts)
    if conflict is not None:
        return False, f"conflicts with {conflict} (global unit)"
    return False, "target state inactive (global unit)"


def _verdict(placement: Placement, slot: Slot, spec: UnitSpec) -> tuple[bool, str]:
    if spec.is_template:
        return False, "a template is never scheduled: start an instance of it"
    if spec.is_global:
        return _global_verdict(slot, spec)
    verdict = constraints.able_to_run(slot, spec.name, spec.requirements)
    if not verdict.ok:
        return False, verdict.reason
    here = placement.where.get(spec.name) == slot.id
    load = slot.load - (1 if here else 0)
    status = "scheduled here" if here else f"able ({load} unit{'' if load == 1 else 's'} there)"
    return True, f"{status}; {verdict.reason}" if verdict.reason else status


def explain(cluster: ClusterState, unit_name: str) -> list[tuple[str, bool, str]]:
    """``[(machine_id, ok, reason)]`` for every live machine, sorted by machine ID. NotFound for an unknown unit.

    A scheduled unit is judged where it is as the engine judges it on each pass; elsewhere, as the scheduler
    would judge a move there. Held machines (not responding) are not listed."""
    spec = cluster.units.get(unit_name)
    if spec is None:
        raise NotFound(f"unit {unit_name} not found")
    placement = Placement(cluster)
    return [(mid, *_verdict(placement, slot, spec)) for mid, slot in sorted(placement.slots.items())]
