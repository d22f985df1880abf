"""The least-loaded scheduler: one unit, the current Placement -> a Decision (a machine, or why none).

Pure and deterministic (fleet's ``leastLoadedScheduler``): machines are tried by number of units, ties broken by
machine ID, and the first able one wins. Cheap paths first: MachineID and MachineOf name the only candidates;
a unit with Replaces prefers a machine running a unit it replaces (that unit is then moved, fleet's Reschedule).
Every outcome carries a reason; a unit no machine can take gets one that says what blocks it everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from fleetpy.engine.cluster import Placement, Slot, UnitSpec
from fleetpy.model import constraints
from fleetpy.model.constraints import Refusal, RefusalKind

# Up to this many machines the scheduler checks every one, so a reason can say "least loaded of N able machines";
# beyond it, it stops at the first able machine (the benchmark's 1,000 machines take that path).
COUNT_ABLE_UP_TO = 100
_LISTED = 3  # unit names quoted in an aggregated reason


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a unit goes (``machine_id``), or None; ``replaces``: units it kicks off that machine."""

    machine_id: str | None
    reason: str
    replaces: tuple[str, ...] = ()


def _short(machine_id: str) -> str:
    return machine_id[:8]


def _names(names: set[str]) -> str:
    ordered = sorted(names)
    listed = ", ".join(ordered[:_LISTED])
    return listed + (f" and {len(ordered) - _LISTED} more" if len(ordered) > _LISTED else "")


def _kicked(placement: Placement, slot: Slot, spec: UnitSpec) -> tuple[str, ...]:
    """Placed non-global units on ``slot`` that ``spec`` replaces (one way)."""
    if not spec.requirements.replaces:
        return ()
    found = constraints.replaced_units(spec.name, spec.requirements, slot.units)
    return tuple(n for n in found if n in placement.where)


def summarize(spec: UnitSpec, refusals: list[tuple[str, Refusal]]) -> str:
    """Why no machine took the unit, from every machine's refusal."""
    by_kind: dict[RefusalKind, set[str]] = defaultdict(set)
    counts: dict[RefusalKind, int] = defaultdict(int)
    for _, refusal in refusals:
        by_kind[refusal.kind].add(refusal.detail)
        counts[refusal.kind] += 1
    wanted = constraints.describe_metadata(spec.requirements.metadata)
    if len(by_kind) == 1:
        kind, details = next(iter(by_kind.items()))
        if kind is RefusalKind.METADATA:
            return f"no machine has {wanted}"
        if kind is RefusalKind.CONFLICT:
            return f"conflicts with {_names(details)} on every machine"
        if kind is RefusalKind.REPLACED:
            return f"replaced by {_names(details)} on every machine"
    parts = []
    for kind in RefusalKind:
        n = counts.get(kind, 0)
        if not n:
            continue
        has = "has" if n == 1 else "have"
        if kind is RefusalKind.METADATA:
            parts.append(f"{n} lack{'s' if n == 1 else ''} {wanted}")
        elif kind is RefusalKind.CONFLICT:
            parts.append(f"{n} {has} conflicting {_names(by_kind[kind])}")
        elif kind is RefusalKind.REPLACED:
            parts.append(f"{n} {has} its replacer {_names(by_kind[kind])}")
        else:
            parts.append(f"{n}: {_names({str(Refusal(kind, d)) for d in by_kind[kind]})}")
    return "no machine can run it: " + "; ".join(parts)


def _pinned(placement: Placement, spec: UnitSpec) -> Decision:
    wanted = spec.requirements.machine_id
    candidates = placement.matching_id(wanted)
    if not candidates:
        return Decision(None, f"MachineID {wanted} not in the cluster")
    refusal: Refusal | None = None
    for slot in candidates:
        refusal = constraints.first_refusal(slot, spec.name, spec.requirements)
        if refusal is None:
            return Decision(slot.id, f"MachineID {wanted}", _kicked(placement, slot, spec))
    return Decision(None, f"MachineID {wanted} cannot run it: {refusal}")


def _with_peers(placement: Placement, spec: UnitSpec) -> Decision:
    homes: dict[str, str] = {}
    for peer in spec.requirements.peers:
        home = placement.where.get(peer)
        if home is None:
            missing = "" if peer in placement.cluster.units else " (no such unit)"
            return Decision(None, f"peer {peer} not scheduled{missing}")
        homes[peer] = home
    if len(set(homes.values())) > 1:
        spread = ", ".join(f"{p} on {_short(m)}" for p, m in sorted(homes.items()))
        return Decision(None, f"peers are on different machines: {spread}")
    peer, home = sorted(homes.items())[0]
    slot = placement.slots.get(home)
    if slot is None:
        return Decision(None, f"peer {peer} is on machine {_short(home)}, which is not responding")
    refusal = constraints.first_refusal(slot, spec.name, spec.requirements)
    if refusal is not None:
        return Decision(None, f"cannot join peer {peer} on {_short(home)}: {refusal}")
    return Decision(home, f"next to peer {peer}", _kicked(placement, slot, spec))


def _replacing(placement: Placement, spec: UnitSpec) -> Decision | None:
    """Prefer a machine running a unit this one replaces; None when there is none or none is able."""
    req = spec.requirements
    if any(c in pattern for pattern in req.replaces for c in "*?["):
        homes = {placement.where[n] for n in placement.where
                 if n != spec.name and constraints.glob_matches(req.replaces, n)}
    else:
        homes = {placement.where[n] for n in req.replaces if n in placement.where and n != spec.name}
    slots = sorted((placement.slots[m] for m in homes if m in placement.slots), key=lambda s: (s.load, s.id))
    for slot in slots:
        kicked = _kicked(placement, slot, spec)
        if kicked and constraints.first_refusal(slot, spec.name, req) is None:
            return Decision(slot.id, "replaces " + ", ".join(kicked), kicked)
    return None


def decide(placement: Placement, spec: UnitSpec, *, kick: bool = True) -> Decision:
    """Pick a machine for an unscheduled unit (which must not be in ``placement`` yet). With ``kick=False`` the
    unit only goes where it would replace nothing."""
    if not placement.slots:
        return Decision(None, "no machines in the cluster")
    req = spec.requirements
    if req.machine_id or req.peers:
        decision = _pinned(placement, spec) if req.machine_id else _with_peers(placement, spec)
        if decision.replaces and not kick:
            return Decision(None, f"its only machine runs {', '.join(decision.replaces)}, which it replaces, "
                                  "and it was just replaced itself")
        return decision
    if req.replaces and kick:
        preferred = _replacing(placement, spec)
        if preferred is not None:
            return preferred
    count_all = len(placement.slots) <= COUNT_ABLE_UP_TO
    chosen: Slot | None = None
    able = 0
    refusals: list[tuple[str, Refusal]] = []
    # metadata is checked inline first: a constrained unit may be refused by most machines on the way
    lacking = Refusal(RefusalKind.METADATA, constraints.describe_metadata(req.metadata)) if req.metadata else None
    for slot in placement.by_load():
        if lacking is not None and not constraints.metadata_matches(slot.machine.metadata, req.metadata):
            refusals.append((slot.id, lacking))
            continue
        refusal = constraints.first_refusal(slot, spec.name, req)
        if refusal is not None:
            refusals.append((slot.id, refusal))
            continue
        if not kick and _kicked(placement, slot, spec):
            continue
        able += 1
        if chosen is None:
            chosen = slot
            if not count_all:
                break
    if chosen is None:
        if not refusals:
            return Decision(None, "every able machine runs a unit it replaces, and it was just replaced itself")
        return Decision(None, summarize(spec, refusals))
    if count_all:
        reason = "the only able machine" if able == 1 else f"least loaded of {able} able machines"
    else:
        reason = f"least loaded able machine ({chosen.load} units)"
    return Decision(chosen.id, reason, _kicked(placement, chosen, spec))
