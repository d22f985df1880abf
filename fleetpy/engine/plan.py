"""The engine's plan: ClusterState -> the schedule changes to make, each with a reason.

Pure (fleet's ``calculateClusterTasks``, without its goroutine). Two passes over sorted unit names, applying each
decision to an in-memory Placement:

1. unschedule: target state inactive; machine gone (absent from ``machines/``: its TTL expired); constraints no
   longer hold there; replaced by a unit on that machine (one-way Replaces). Units on held machines stay put.
2. schedule every unit that wants a machine and has none, peers before the units that follow them, a unit
   kicked by a Replaces right after its replacer. Units that cannot be placed get a reason in ``Plan.unplaced``.

Nothing else moves: a unit correctly scheduled stays where it is whoever leads.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetpy.engine import scheduler
from fleetpy.engine.cluster import ClusterState, Placement
from fleetpy.model import constraints
from fleetpy.model.records import JobState


class TaskKind(enum.StrEnum):
    UNSCHEDULE = "unschedule"
    SCHEDULE = "schedule"


@dataclass(frozen=True, slots=True)
class Task:
    """One schedule change: set (SCHEDULE) or compare-and-delete (UNSCHEDULE) ``job/<unit>/target``."""

    kind: TaskKind
    unit: str
    machine_id: str
    reason: str

    def __str__(self) -> str:
        arrow = "->" if self.kind is TaskKind.SCHEDULE else "from"
        return f'{self.kind} {self.unit} {arrow} {self.machine_id[:8]} reason="{self.reason}"'


@dataclass(frozen=True, slots=True)
class Plan:
    tasks: tuple[Task, ...] = ()
    unplaced: Mapping[str, str] = field(default_factory=dict)  # unit -> why it stays unscheduled


class _Planner:
    def __init__(self, cluster: ClusterState) -> None:
        self.cluster = cluster
        self.placement = Placement(cluster)
        self.tasks: list[Task] = []
        self.unplaced: dict[str, str] = {}

    def unschedule(self, name: str, machine_id: str, reason: str) -> None:
        self.tasks.append(Task(TaskKind.UNSCHEDULE, name, machine_id, reason))
        self.placement.remove(name)

    def broken_followers(self, machine_ids: set[str]) -> list[str]:
        """Units on these machines whose MachineOf peers are no longer there (after removals), sorted."""
        out = []
        for mid in sorted(machine_ids):
            slot = self.placement.slots.get(mid)
            if slot is None:
                continue
            for name in self.placement.on_machine(mid):
                req = slot.units[name]
                if req.peers and any(p not in slot.units for p in req.peers):
                    out.append(name)
        return out

    def cascade(self, machine_ids: set[str]) -> list[str]:
        """Unschedule followers whose peers left these machines, transitively; returns them in order."""
        moved: list[str] = []
        while machine_ids:
            touched: set[str] = set()
            for name in self.broken_followers(machine_ids):
                mid = self.placement.where[name]
                peers = ", ".join(p for p in self.placement.spec(name).requirements.peers
                                  if p not in self.placement.slots[mid].units)
                self.unschedule(name, mid, f"peer {peers} left {mid[:8]}")
                moved.append(name)
                touched.add(mid)
            machine_ids = touched
        return moved

    # -- pass 1 ---------------------------------------------------------------------------------------------
    def unschedule_pass(self) -> None:
        touched: set[str] = set()
        for name, spec in self.cluster.units.items():
            mid = spec.target
            if mid is None or spec.is_global or spec.is_template:
                continue
            if spec.target_state is JobState.INACTIVE:
                self.unschedule(name, mid, "target state inactive")
                touched.add(mid)
                continue
            if mid in self.cluster.held:
                continue
            slot = self.placement.slots.get(mid)
            if slot is None:
                self.unschedule(name, mid, f"machine {mid[:8]} is gone")
                continue
            refusal = constraints.first_refusal(slot, name, spec.requirements)
            if refusal is not None:
                reason = (f"replaced by {refusal.detail}" if refusal.kind is constraints.RefusalKind.REPLACED
                          else f"can no longer run on {mid[:8]}: {refusal}")
                self.unschedule(name, mid, reason)
                touched.add(mid)
        self.cascade(touched)

    # -- pass 2 ---------------------------------------------------------------------------------------------
    def place(self, name: str) -> None:
        """Decide one unit; units it kicks (Replaces) and their followers are decided right after it. A kicked
        unit does not kick in turn (a chain of one-way Replaces could otherwise go round forever)."""
        queue = [name]
        kicked_now: set[str] = set()
        while queue:
            current = queue.pop(0)
            spec = self.placement.spec(current)
            decision = scheduler.decide(self.placement, spec, kick=current not in kicked_now)
            if decision.machine_id is None:
                self.unplaced[current] = decision.reason
                continue
            self.unplaced.pop(current, None)
            self.tasks.append(Task(TaskKind.SCHEDULE, current, decision.machine_id, decision.reason))
            self.placement.place(current, decision.machine_id)
            for kicked in decision.replaces:
                self.unschedule(kicked, decision.machine_id, f"replaced by {current}")
                queue.append(kicked)
                kicked_now.add(kicked)
            if decision.replaces:
                queue.extend(self.cascade({decision.machine_id}))

    def schedule_pass(self) -> None:
        waiting = [n for n, s in self.cluster.units.items() if s.wants_machine and n not in self.placement.where]
        undecided = set(waiting)
        while waiting:
            deferred = []
            for name in waiting:
                peers = self.placement.spec(name).requirements.peers
                if any(p in undecided and p != name for p in peers):
                    deferred.append(name)
                    continue
                undecided.discard(name)
                self.place(name)
            if len(deferred) == len(waiting):
                for name in deferred:
                    self.unplaced[name] = f"MachineOf cycle: {self.cycle(name, undecided)}"
                break
            waiting = deferred

    def cycle(self, start: str, undecided: set[str]) -> str:
        """``a.service -> b.service -> a.service``: the MachineOf loop ``start`` waits on."""
        path = [start]
        current = start
        while True:
            nxt = next(p for p in self.placement.spec(current).requirements.peers if p in undecided)
            if nxt in path:
                return " -> ".join([*path[path.index(nxt):], nxt])
            path.append(nxt)
            current = nxt


def plan(cluster: ClusterState) -> Plan:
    """Both passes; ``cluster`` itself is not changed."""
    planner = _Planner(cluster)
    planner.unschedule_pass()
    planner.schedule_pass()
    return Plan(tuple(planner.tasks), dict(sorted(planner.unplaced.items())))


def plan_cluster(cluster: ClusterState) -> list[Task]:
    """The tasks of ``plan(cluster)``: unschedules first, then schedules, each with its reason."""
    return list(plan(cluster).tasks)
