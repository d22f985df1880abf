"""``Agent``: the reconciler that makes this machine's systemd match the registry (fleet's AgentReconciler).

I/O component with a pure core: snapshot (watch-maintained caches of the job tree and this machine's tree, unit
bodies read once per hash) -> ``desired_units`` and ``plan`` -> execute through the ``UnitManager``, one log line
per task, stopping at the first failure. Runs at start, on job/machine changes (coalesced) and every 5 s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleetpy.agent.desired import Desired, desired_units, wanted_bodies
from fleetpy.agent.plan import LocalUnit, Task, TaskKind, plan, plan_purge
from fleetpy.agent.publisher import StatePublisher
from fleetpy.errors import FleetError, RegistryError
from fleetpy.loop import Trigger, run_periodic
from fleetpy.model.records import JobState, MachineState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry import codec
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry, decode_bodies, decode_jobs, decode_machines
from fleetpy.registry.store import Event, Node
from fleetpy.systemd.base import UnitManager

log = logging.getLogger("fleetpy.agent")

RECONCILE_INTERVAL = 5.0
_TRIGGERING = frozenset({"object", "target", "target-state"})  # job keys whose change can change the plan


@dataclass(frozen=True, slots=True)
class Outcome:
    task: Task
    error: str = ""  # "" when the task succeeded
    skipped: bool = False  # not run: an earlier task failed


class Agent:
    def __init__(self, *, registry: Registry, manager: UnitManager, publisher: StatePublisher,
                 machine: Callable[[], MachineState], jobs: TreeCache, machine_tree: TreeCache | None = None,
                 interval: float = RECONCILE_INTERVAL, refresh_caches: bool = False) -> None:
        """``jobs`` follows the job tree, ``machine_tree`` this machine's directory (dynamic metadata).
        ``refresh_caches``: re-read both caches every pass (``disable_watches``)."""
        self.registry = registry
        self.manager = manager
        self.publisher = publisher
        self.machine = machine
        self.jobs = jobs
        self.machine_tree = machine_tree
        self.interval = interval
        self.refresh_caches = refresh_caches
        self.trigger = Trigger()
        self._state: dict[str, JobState] = {}  # what this agent last asked systemd for, per local unit
        self._bodies: dict[str, UnitFile] = {}
        self._seeded = False
        self._stale: set[str] = set()  # local files systemd does not know (not linked): reloaded when wanted
        self._skipped: dict[str, str] = {}
        self.passes = 0

    # -- wiring -------------------------------------------------------------------------------------------
    def on_job_event(self, event: Event | None) -> None:
        """TreeCache callback: wake the loop for changes that matter (not for ``job-state`` heartbeats)."""
        if event is None or event.node.is_dir:
            self.trigger.fire()
            return
        parts = self.registry.keys.split(event.node.key)
        if len(parts) != 3 or parts[2] in _TRIGGERING:
            self.trigger.fire()

    def on_machine_event(self, event: Event | None) -> None:
        self.trigger.fire()

    def run(self, stop: threading.Event) -> None:
        for cache in (self.jobs, self.machine_tree):
            while cache is not None and not self.refresh_caches and not cache.loaded.wait(0.2):
                if stop.is_set():
                    return
        run_periodic(self.reconcile, interval=self.interval, stop=stop, trigger=self.trigger, name="agent")

    # -- snapshot -----------------------------------------------------------------------------------------
    def current(self) -> dict[str, LocalUnit]:
        """The local units: file hashes from the manager, target states from this agent's memory. A restarted
        agent adopts what systemd runs (active with the right hash: nothing to do)."""
        files = self.manager.units()
        if not self._seeded:
            self._seed(files)
        return {name: LocalUnit(name, "" if name in self._stale else unit_hash,
                                self._state.get(name, JobState.LOADED))
                for name, unit_hash in files.items()}

    def _seed(self, files: Mapping[str, str]) -> None:
        states = self.manager.states(sorted(files)) if files else {}
        for name in sorted(files):
            sd = states.get(name)
            if sd is None or not sd.found:
                self._stale.add(name)  # not linked in systemd: its hash counts as unknown, so it is reloaded
                continue
            self._state[name] = JobState.LAUNCHED if sd.running else JobState.LOADED
            if sd.running:
                self.publisher.heartbeat(name, fresh=False)
        adopted = sorted(n for n, s in self._state.items() if s is JobState.LAUNCHED)
        if files:
            log.info("found %d local units (%d running: %s)", len(files), len(adopted), ", ".join(adopted) or "-")
        self._seeded = True

    def desired(self) -> Desired:
        if self.refresh_caches:
            self.jobs.reload()
            if self.machine_tree is not None:
                self.machine_tree.reload()
        if not self.jobs.loaded.is_set():
            raise RegistryError("job tree not read yet")
        keys = self.registry.keys
        machine = self.machine()
        jobs = decode_jobs(keys, self.jobs.nodes())
        targets = {name: job.target for name, job in jobs.items()}
        names = wanted_bodies(machine.id, targets)
        self._fetch_bodies({jobs[n].unit_hash for n in names})
        units = [Unit(n, self._bodies[jobs[n].unit_hash], jobs[n].target_state)
                 for n in names if jobs[n].unit_hash in self._bodies]
        desired = desired_units(machine_id=machine.id, metadata=self._metadata(machine), units=units,
                                targets=targets)
        if desired.skipped != self._skipped:
            for name, why in sorted(desired.skipped.items()):
                if self._skipped.get(name) != why:
                    log.info("not running %s here: %s", name, why)
            self._skipped = dict(desired.skipped)
        return desired

    def _metadata(self, machine: MachineState) -> Mapping[str, str]:
        """Configured metadata overlaid with the dynamic ``machines/<id>/metadata/<k>`` values."""
        if self.machine_tree is None:
            return machine.metadata
        keys = self.registry.keys
        own = Node(keys.machine_object(machine.id), codec.encode_machine(machine), 0)
        nodes = [n for n in self.machine_tree.nodes() if n.key != own.key] + [own]
        merged = decode_machines(keys, nodes).get(machine.id)
        return merged.metadata if merged is not None else machine.metadata

    def _fetch_bodies(self, hashes: set[str]) -> None:
        missing = sorted(h for h in hashes if h not in self._bodies)
        if not missing:
            return
        raw: dict[str, str] = {}
        if len(missing) > 2:  # one read of the unit tree beats many single reads
            raw = decode_bodies(self.registry.keys, self.registry.listing(Tree.UNIT).nodes)
        for unit_hash in missing:
            try:
                body = self.registry.body(unit_hash, raw.get(unit_hash))
            except RegistryError as err:
                if unit_hash not in self._skipped:
                    log.warning("unit body %s unreadable: %s", unit_hash, err)
                continue
            if body is not None:
                self._bodies[unit_hash] = body

    # -- reconcile ----------------------------------------------------------------------------------------
    def reconcile(self) -> list[Outcome]:
        desired = self.desired()
        tasks = plan(desired.units, self.current())
        outcomes = self.execute(tasks)
        self.passes += 1
        self.publisher.track(self.manager.units(), self._launched())
        if tasks:
            self.publisher.kick()
        failed = any(o.error for o in outcomes)
        if failed and any(not o.error and not o.skipped for o in outcomes):
            self.trigger.fire()  # progress was made: go on with the rest right away
        return outcomes

    def execute(self, tasks: list[Task], *, halt: bool = True) -> list[Outcome]:
        """Run tasks in order, one log line each; after a failure the rest are skipped (``halt``)."""
        outcomes: list[Outcome] = []
        for i, task in enumerate(tasks):
            started = time.monotonic()
            try:
                self._do(task)
            except FleetError as err:
                log.error("task %s: failed: %s", task, err)
                outcomes.append(Outcome(task, error=str(err) or type(err).__name__))
                if halt:
                    rest = tasks[i + 1:]
                    if rest:
                        log.warning("skipped %d remaining tasks after the failure (next pass retries)", len(rest))
                    outcomes.extend(Outcome(t, skipped=True) for t in rest)
                    return outcomes
                continue
            log.info("task %s: done in %.1f ms", task, (time.monotonic() - started) * 1000)
            outcomes.append(Outcome(task))
        return outcomes

    def _do(self, task: Task) -> None:
        name = task.unit
        if task.kind is TaskKind.UNLOAD:
            self._state.pop(name, None)
            self._stale.discard(name)
            self.publisher.clear_heartbeat(name)
            self.manager.unload(name)
        elif task.kind is TaskKind.LOAD:
            assert task.unit_file is not None
            self._state[name] = JobState.LOADED
            self._stale.discard(name)
            self.manager.load(name, task.unit_file)
        elif task.kind is TaskKind.RELOAD:
            self.manager.reload()
        elif task.kind is TaskKind.STOP:
            self._state[name] = JobState.LOADED  # set first, like fleet: a refused stop is not retried forever
            self.publisher.clear_heartbeat(name)
            self.manager.stop(name)
        elif task.kind is TaskKind.START:
            self._state[name] = JobState.LAUNCHED
            self.publisher.heartbeat(name)
            self.manager.start(name)

    def _launched(self) -> list[str]:
        return sorted(n for n, s in self._state.items() if s is JobState.LAUNCHED)

    def purge(self) -> list[Outcome]:
        """Graceful shutdown (fleet's Purge): unload every local unit, best effort, then drop the states."""
        tasks = plan_purge(self.current())
        if tasks:
            log.info("shutting down: unloading %d local units", len(tasks) - 1)
        outcomes = self.execute(tasks, halt=False)
        self.publisher.track({}, ())
        return outcomes
