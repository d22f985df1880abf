"""The engine's view of the cluster: a frozen ``ClusterState`` snapshot and the mutable ``Placement`` worked on.

Pure. ``ClusterState`` is built from units, the schedule and the live machines (fleet's ``newClusterState``);
``Placement`` is the in-memory copy a plan mutates as it decides, so later decisions in one pass see earlier
ones. Each machine's units are its scheduled non-global units plus the global units it qualifies for; the
machines are kept ordered by (load, ID) for the least-loaded scheduler.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from fleetpy.model import constraints
from fleetpy.model.job import Requirements
from fleetpy.model.names import UnitNameInfo
from fleetpy.model.records import JobState, MachineState, ScheduledUnit, Unit


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """A unit as the engine sees it: name, parsed requirements, target state and current target machine."""

    name: str
    requirements: Requirements = field(default_factory=Requirements)
    target_state: JobState = JobState.LAUNCHED
    target: str | None = None
    is_template: bool = False

    @classmethod
    def of(cls, name: str, requirements: Requirements, target_state: JobState, target: str | None) -> UnitSpec:
        return cls(name, requirements, target_state, target or None, UnitNameInfo.of(name).is_template)

    @property
    def is_global(self) -> bool:
        return self.requirements.is_global

    @property
    def wants_machine(self) -> bool:
        """Whether the engine places this unit: not a template, not global, target state not inactive."""
        return not self.is_template and not self.is_global and self.target_state is not JobState.INACTIVE


@dataclass(frozen=True, slots=True)
class ClusterState:
    """What one reconcile pass decides from. ``held``: absent machines whose units are kept in place for now
    (the engine's mass-loss damper); they are neither rescheduled from nor scheduled to."""

    units: Mapping[str, UnitSpec]
    machines: Mapping[str, MachineState]
    held: frozenset[str] = frozenset()

    @classmethod
    def of(cls, specs: Iterable[UnitSpec], machines: Iterable[MachineState], *,
           held: Iterable[str] = ()) -> ClusterState:
        units = {s.name: s for s in sorted(specs, key=lambda s: s.name)}
        live = {m.id: m for m in sorted(machines, key=lambda m: m.id)}
        return cls(MappingProxyType(units), MappingProxyType(live), frozenset(held) - set(live))

    @classmethod
    def build(cls, units: Iterable[Unit], schedule: Iterable[ScheduledUnit], machines: Iterable[MachineState], *,
              held: Iterable[str] = ()) -> ClusterState:
        """From registry records (``Registry.units()``, ``.schedule()``, ``.machines()``)."""
        targets = {s.name: s.target_machine for s in schedule}
        specs = [UnitSpec.of(u.name, u.requirements, u.target_state, targets.get(u.name)) for u in units]
        return cls.of(specs, machines, held=held)


class Slot:
    """One machine in a Placement (a ``constraints.MachineView``). Change ``units`` only through ``add`` and
    ``discard``: they keep ``constrained`` in step."""

    __slots__ = ("constrained", "machine", "units")

    def __init__(self, machine: MachineState) -> None:
        self.machine = machine
        self.units: dict[str, Requirements] = {}
        self.constrained: dict[str, Requirements] = {}

    def add(self, name: str, requirements: Requirements) -> None:
        self.units[name] = requirements
        if constraints.is_constrained(requirements):
            self.constrained[name] = requirements

    def discard(self, name: str) -> None:
        self.units.pop(name, None)
        self.constrained.pop(name, None)

    @property
    def id(self) -> str:
        return self.machine.id

    @property
    def load(self) -> int:
        return len(self.units)

    def __repr__(self) -> str:
        return f"Slot({self.machine.id[:8]}, {sorted(self.units)})"


class Placement:
    """The working copy of who runs where. ``where`` maps each placed non-global unit to its machine (a live
    machine, or a held one)."""

    def __init__(self, cluster: ClusterState) -> None:
        self.cluster = cluster
        self.slots: dict[str, Slot] = {mid: Slot(m) for mid, m in cluster.machines.items()}
        self.where: dict[str, str] = {}
        self._short: dict[str, list[str]] = {}
        for mid in self.slots:
            self._short.setdefault(mid[:8], []).append(mid)
        for spec in cluster.units.values():
            if spec.target is None or not spec.wants_machine:
                continue
            if spec.target in self.slots:
                self.slots[spec.target].add(spec.name, spec.requirements)
                self.where[spec.name] = spec.target
            elif spec.target in cluster.held:
                self.where[spec.name] = spec.target
        for spec in cluster.units.values():
            if spec.is_global and not spec.is_template and spec.target_state is not JobState.INACTIVE:
                self._add_global(spec)
        self._order = sorted((slot.load, mid) for mid, slot in self.slots.items())

    def _add_global(self, spec: UnitSpec) -> None:
        req = spec.requirements
        for slot in self.slots.values():
            if req.metadata and not constraints.metadata_matches(slot.machine.metadata, req.metadata):
                continue
            if constraints.conflict_on(slot, spec.name, req.conflicts) is not None:
                continue
            slot.add(spec.name, req)

    # -- queries --------------------------------------------------------------------------------------------
    def spec(self, name: str) -> UnitSpec:
        return self.cluster.units[name]

    def by_load(self) -> Iterator[Slot]:
        """Live machines, least loaded first, ties broken by machine ID (a snapshot: safe to mutate after)."""
        return (self.slots[mid] for _, mid in list(self._order))

    def matching_id(self, wanted: str) -> list[Slot]:
        """Live machines whose full or 8-char short ID is ``wanted``, least loaded first."""
        ids = [wanted] if wanted in self.slots else (self._short.get(wanted, []) if len(wanted) == 8 else [])
        return sorted((self.slots[mid] for mid in ids), key=lambda s: (s.load, s.id))

    def on_machine(self, machine_id: str) -> list[str]:
        """Placed non-global units on a machine, sorted."""
        slot = self.slots.get(machine_id)
        if slot is None:
            return sorted(n for n, m in self.where.items() if m == machine_id)
        return sorted(n for n in slot.units if n in self.where)

    # -- changes --------------------------------------------------------------------------------------------
    def _reorder(self, slot: Slot, old_load: int) -> None:
        i = bisect.bisect_left(self._order, (old_load, slot.id))
        del self._order[i]
        bisect.insort(self._order, (slot.load, slot.id))

    def place(self, name: str, machine_id: str) -> None:
        slot = self.slots[machine_id]
        old = slot.load
        slot.add(name, self.cluster.units[name].requirements)
        self.where[name] = machine_id
        self._reorder(slot, old)

    def remove(self, name: str) -> None:
        machine_id = self.where.pop(name, None)
        slot = self.slots.get(machine_id) if machine_id is not None else None
        if slot is not None and name in slot.units:
            old = slot.load
            slot.discard(name)
            self._reorder(slot, old)
