"""The sweep: the leading engine removes the unit states and heartbeats of machines that are gone.

fleetpyd writes ``states/<unit>/<machine>``, the legacy ``state/<unit>`` and ``job/<unit>/job-state`` without a
TTL (an idle agent then costs O(1) requests whatever it runs), so a machine that dies without a clean shutdown
(SIGKILL, power loss, partition) leaves them behind. Once its ``machines/<id>/object`` has expired, and it is not
held by the engine's ``LossDamper`` (etcd trouble expires every TTL at once), the engine deletes them.

``plan_sweep`` is pure: a snapshot of the three trees and the live/held machines -> the deletes, each with its
reason. ``Sweeper`` is the small I/O part: it runs only when a sweep is due (the machine set lost members, or this
engine just became leader), reads ``states/`` and ``state/`` then (2 requests), re-checks each dead machine's key
directly (its watch copy may lag) and deletes with compare-and-delete on the index it read, so a machine that came
back and republished is never wiped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass

from fleetpy.errors import CASConflict, NotFound, RegistryError
from fleetpy.parallel import pmap
from fleetpy.registry.decode import legacy_state_machine
from fleetpy.registry.keys import Keys, Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Node

log = logging.getLogger("fleetpy.engine")


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``key`` if its modifiedIndex is still ``index``: it belongs to the gone machine ``machine_id``."""

    key: str
    index: int
    machine_id: str
    reason: str

    def __str__(self) -> str:
        return f'SweepKey key={self.key} machine={self.machine_id} reason="{self.reason}"'


@dataclass(frozen=True, slots=True)
class SweepPlan:
    deletes: tuple[Delete, ...]
    held: frozenset[str]  # gone machines with keys left that the damper holds: swept later

    @property
    def machines(self) -> list[str]:
        return sorted({d.machine_id for d in self.deletes})


def plan_sweep(keys: Keys, *, live: Set[str], held: Set[str], states: Iterable[Node], legacy: Iterable[Node],
               jobs: Iterable[Node]) -> SweepPlan:
    """``states``/``legacy``/``jobs``: the leaves of ``states/``, ``state/`` and ``job/``. A key is swept when
    the machine it belongs to is neither live nor held. Ordered by machine, then key."""
    owned: list[tuple[str, Node, str]] = []  # machine, node, reason
    for node in states:
        parts = keys.split(node.key)
        if len(parts) == 3 and parts[0] == Tree.STATES.value and not node.is_dir:
            owned.append((parts[2], node, "unit state of a machine that is gone"))
    for node in legacy:
        parts = keys.split(node.key)
        if len(parts) == 2 and parts[0] == Tree.LEGACY_STATE.value and node.value is not None:
            machine_id = legacy_state_machine(node.value)
            if machine_id:
                owned.append((machine_id, node, "legacy unit state of a machine that is gone"))
    for node in jobs:
        parts = keys.split(node.key)
        if len(parts) == 3 and parts[0] == Tree.JOB.value and parts[2] == "job-state" and node.value:
            owned.append((node.value, node, "heartbeat of a machine that is gone"))
    deletes = [Delete(node.key, node.modified_index, machine_id, reason) for machine_id, node, reason in owned
               if machine_id not in live and machine_id not in held]
    waiting = frozenset(m for m, _, _ in owned if m not in live and m in held)
    return SweepPlan(tuple(sorted(deletes, key=lambda d: (d.machine_id, d.key))), waiting)


def live_machines(keys: Keys, machines: Iterable[Node]) -> frozenset[str]:
    """The IDs with a ``machines/<id>/object`` leaf."""
    out = set()
    for node in machines:
        parts = keys.split(node.key)
        if len(parts) == 3 and parts[0] == Tree.MACHINES.value and parts[2] == "object" and not node.is_dir:
            out.add(parts[1])
    return frozenset(out)


class Sweeper:
    """Runs a sweep when one is due: after the machine set lost members, and once per leadership term."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.due = True
        self._live: frozenset[str] | None = None
        self.swept = 0

    def new_term(self) -> None:
        self.due = True
        self._live = None

    def observe(self, live: Set[str]) -> None:
        """The live machines of this pass: a sweep becomes due when one that was live is not any more."""
        current = frozenset(live)
        if self._live is not None and self._live - current:
            self.due = True
        self._live = current

    def sweep(self, *, machines: Iterable[Node], held: Set[str], jobs: Callable[[], Iterable[Node]]) -> list[Delete]:
        """Sweep if due; the deletes done. ``machines``: the leaves of ``machines/``; ``jobs`` gives those of
        ``job/``, asked for only when a sweep is due (the engine's watch copies). A machine is live while its
        object key exists, readable or not. Registry errors are logged and leave the sweep due."""
        live = live_machines(self.registry.keys, machines)
        self.observe(live)
        if not self.due:
            return []
        try:
            states = self.registry.listing(Tree.STATES).nodes
            legacy = self.registry.listing(Tree.LEGACY_STATE).nodes
            plan = plan_sweep(self.registry.keys, live=live, held=held, states=states, legacy=legacy, jobs=jobs())
            done = self.execute(plan)
        except RegistryError as err:
            log.warning("engine: sweep of gone machines' states failed: %s (retried next pass)", err)
            return []
        self.due = bool(plan.held)  # held machines are swept once the damper lets them go
        self.swept += len(done)
        return done

    def execute(self, plan: SweepPlan) -> list[Delete]:
        """Re-check each machine's key (the watch copy may lag a re-registration), then compare-and-delete."""
        keys = self.registry.keys
        back = {m for m in plan.machines if self.registry.store.get(keys.machine_object(m)) is not None}
        todo = [d for d in plan.deletes if d.machine_id not in back]

        def delete(item: Delete) -> bool:
            try:
                self.registry.store.delete(item.key, prev_index=item.index)
            except (NotFound, CASConflict):
                return False
            return True

        done: list[Delete] = []
        for item, ok in zip(todo, pmap(delete, todo), strict=True):  # in key order: the log reads in order
            log.info("engine: %s%s", item, "" if ok else " skipped: changed meanwhile")
            if ok:
                done.append(item)
        return done
