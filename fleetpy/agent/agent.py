"""``Agent``: the reconciler that makes this machine's systemd match the registry (fleet's AgentReconciler).

I/O component with a pure core: snapshot (watch-maintained caches of the job tree and this machine's tree, unit
bodies read once per hash) -> ``desired_units`` and ``plan`` -> execute through the ``UnitManager``, one log line
per task, stopping at the first failure. Runs at start, on job/machine changes (coalesced) and every 5 s.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fleetpy.agent.desired import Desired, desired_units, wanted_bodies
from fleetpy.agent.plan import LocalUnit, Task, TaskKind, plan, plan_purge
from fleetpy.agent.publisher import StatePublisher
from fleetpy.errors import FleetError, RegistryError, SystemdError
from fleetpy.loop import Trigger, run_periodic
from fleetpy.model.job import Requirements
from fleetpy.model.records import JobState, MachineState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.observe import NULL, PassMetrics
from fleetpy.registry import codec
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import decode_bodies, decode_machines
from fleetpy.registry.jobview import JobView
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Event, Node
from fleetpy.systemd.base import TransientSystemdError, UnitManager

log = logging.getLogger("fleetpy.agent")

RECONCILE_INTERVAL = 5.0
SETTLE = 0.03  # a pass woken by the watch waits until the job tree has been quiet this long (at most SETTLE_MAX)...
SETTLE_MAX = 0.5
RELOAD_SETTLE = 0.2  # ...or this long when its plan needs a daemon-reload (0.3-0.8 s each: a burst of removals,
MAX_SETTLE = 1.0  # as `destroy` of many units makes, waits to become one pass), but never longer than this
LOAD_GAP = 0.4  # a pass that links new unit files starts at least this long after the previous one that did. systemd
# rebuilds its unit-file map (~5 ms in a lab node) at the first start after a link: 100 units linked and started one
# pass each cost it 0.55-0.67 CPU-s, in passes of 10 0.17 s, of 100 0.12-0.14 s. A lone unit is not held
TRIGGERING = frozenset({"object", "target", "target-state"})  # job keys whose change can change the plan


def may_be_global(job_object: str, body: Callable[[str], UnitFile | None]) -> bool:
    """Whether the unit of this (raw) job object is global, or may be: its object does not decode, or ``body``
    (unit hash -> the unit file, None when not read yet) does not have its file."""
    try:
        unit_hash = codec.decode_job_object(job_object)[1]
    except RegistryError:
        return True
    found = body(unit_hash)
    return found is None or Requirements.of(found).is_global


def _batches(tasks: list[Task]) -> list[tuple[TaskKind, list[Task]]]:
    return [(kind, list(group)) for kind, group in itertools.groupby(tasks, key=lambda t: t.kind)]


@dataclass(frozen=True, slots=True)
class Outcome:
    task: Task
    error: str = ""  # "" when the task succeeded
    skipped: bool = False  # not run: an earlier task failed


class Agent:
    def __init__(self, *, registry: Registry, manager: UnitManager, publisher: StatePublisher,
                 machine: Callable[[], MachineState], jobs: TreeCache, machine_tree: TreeCache | None = None,
                 interval: float = RECONCILE_INTERVAL, refresh_caches: bool = False, settle: float = SETTLE,
                 max_settle: float = MAX_SETTLE, load_gap: float = LOAD_GAP) -> None:
        """``jobs`` follows the job tree, ``machine_tree`` this machine's directory (dynamic metadata).
        ``refresh_caches``: re-read both caches every pass (``disable_watches``)."""
        self.registry = registry
        self.manager = manager
        self.publisher = publisher
        self.metrics: PassMetrics = NULL
        self.machine = machine
        self.jobs = jobs
        self.machine_tree = machine_tree
        self.interval = interval
        self.refresh_caches = refresh_caches
        self.settle = settle
        self.max_settle = max_settle
        self.load_gap = load_gap
        self._loaded_at = float("-inf")  # when a pass last linked unit files
        self.trigger = Trigger()
        self._last_event = float("-inf")
        self._state: dict[str, JobState] = {}  # what this agent last asked systemd for, per local unit
        self._bodies: dict[str, UnitFile] = {}
        self._job_dir = registry.keys.job_dir("")  # "<prefix>job/"
        self._seeded = False
        self._stale: set[str] = set()  # local files systemd does not know (not linked): reloaded when wanted
        self._skipped: dict[str, str] = {}
        self._job_states: dict[str, tuple[str | None, str | None]] = {}  # unit -> (target, job-state), cached
        self.passes = 0

    # -- wiring -------------------------------------------------------------------------------------------
    @property
    def jobs(self) -> TreeCache:
        """The job tree's watch-maintained copy; setting it (the simulation shares one per process) also sets
        the view that decodes it pass by pass."""
        return self._jobs.cache

    @jobs.setter
    def jobs(self, cache: TreeCache) -> None:
        self._jobs = JobView(cache, self.registry.keys, self.machine().id, self._may_be_global)

    def _may_be_global(self, job_object: str) -> bool:
        return may_be_global(job_object, self._bodies.get)

    def on_job_event(self, event: Event | None) -> None:
        """TreeCache callback (the cache already holds the event): wake the loop for changes that can matter
        here; not for ``job-state`` heartbeats, nor for units of other machines. Every engine write and every
        CLI write reaches every agent, so on a busy cluster most events are someone else's: an agent woken by
        them would plan (decoding the whole job tree) for nothing, on CPU the others need."""
        if event is not None and not self._matters(event):
            return
        self._last_event = time.monotonic()
        self.trigger.fire()

    def _matters(self, event: Event) -> bool:
        """Runs on the watch thread for every event of the job tree (most of them another machine's): the key
        is cut with ``partition``, not split into a tuple, and looked up without the cache's lock."""
        key = event.node.key
        job_dir = self._job_dir
        if not key.startswith(job_dir):
            return True
        name, slash, field = key[len(job_dir):].partition("/")
        if not name:
            return True
        if slash and "/" not in field and field not in TRIGGERING:
            return False
        if name in self._state or name in self._stale:
            return True  # a local unit: anything may change its plan
        me = self.machine().id
        if field == "target":
            return not event.action.removes and event.node.value == me
        prefix = job_dir + name
        target = self.jobs.peek(prefix + "/target")
        if target is not None:
            return target.value == me
        obj = self.jobs.peek(prefix + "/object")  # unscheduled: matters only if it is (or may be) global
        return obj is not None and obj.value is not None and self._may_be_global(obj.value)

    def on_machine_event(self, event: Event | None) -> None:
        self._last_event = time.monotonic()
        self.trigger.fire()

    def settled_reconcile(self) -> list[Outcome]:
        """A pass, once the watch has been quiet for ``settle`` s. A pass whose plan needs a daemon-reload waits
        for ``RELOAD_SETTLE`` s of quiet (at most ``max_settle`` s of waiting in all), one that links files within
        ``load_gap`` s of the last pass that did waits out the gap; either then plans again."""
        started = time.monotonic()
        self._wait_quiet(self.settle, started, min(SETTLE_MAX, self.max_settle))
        return self.reconcile(hold=(lambda tasks: self._hold(tasks, started)) if self.settle > 0 else None)

    def _hold(self, tasks: list[Task], started: float) -> bool:
        """Wait before running ``tasks`` so that more changes join them; True when it waited."""
        if any(t.kind is TaskKind.RELOAD for t in tasks):
            return self._wait_quiet(RELOAD_SETTLE, started)
        wait = self._loaded_at + self.load_gap - time.monotonic()
        if wait > 0 and any(t.kind is TaskKind.LOAD for t in tasks):
            time.sleep(wait)  # units keep arriving: link them together, one unit-file map rebuild for all
            return True
        return False

    def _wait_quiet(self, settle: float, started: float, limit: float | None = None) -> bool:
        """Sleep until no job event came for ``settle`` s or ``limit`` (``max_settle``) s passed since
        ``started``; True when it slept."""
        limit = self.max_settle if limit is None else limit
        slept = False
        while True:
            now = time.monotonic()
            quiet = now - self._last_event
            if quiet >= settle or now - started >= limit:
                return slept
            time.sleep(min(settle - quiet, limit - (now - started)))
            slept = True

    def run(self, stop: threading.Event) -> None:
        for cache in (self.jobs, self.machine_tree):
            while cache is not None and not self.refresh_caches and not cache.loaded.wait(0.2):
                if stop.is_set():
                    return
        run_periodic(self.settled_reconcile, interval=self.interval, stop=stop, trigger=self.trigger, name="agent")

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
        machine = self.machine()
        me = machine.id
        if self._jobs.machine != me:  # the view indexes by machine id (set when the agent was built)
            self._jobs = JobView(self._jobs.cache, self.registry.keys, me, self._may_be_global)
        self._jobs.sync()
        jobs = self._jobs.mine()  # what concerns this machine: its units, the unscheduled ones (globals), its beats
        self._job_states = {name: (job.target, job.job_state) for name, job in jobs.items()}
        targets = {name: job.target for name, job in jobs.items()}
        names = wanted_bodies(me, targets)
        self._fetch_bodies({jobs[n].unit_hash for n in names})
        self._jobs.refilter()  # the unscheduled units whose bodies were just read and are not global: not again
        units = [Unit(n, self._bodies[jobs[n].unit_hash], jobs[n].target_state)
                 for n in names if jobs[n].unit_hash in self._bodies]
        desired = desired_units(machine_id=me, metadata=self._metadata(machine), units=units,
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
    def reconcile(self, *, hold: Callable[[list[Task]], bool] | None = None) -> list[Outcome]:
        """One pass. ``hold``: called with the plan; when it waited (more changes may have come), the pass plans
        again, so a burst of removals costs one reload and a stream of new units few links."""
        started = time.monotonic()
        desired = self.desired()
        tasks = plan(desired.units, self.current())
        if hold is not None and tasks and hold(tasks):
            desired = self.desired()
            tasks = plan(desired.units, self.current())
        outcomes = self.execute(tasks)
        self.passes += 1
        for outcome in outcomes:
            if not outcome.skipped:
                self.metrics.task("agent", str(outcome.task.kind), ok=not outcome.error)
        self.metrics.reconcile("agent", time.monotonic() - started, ok=not any(o.error for o in outcomes))
        self.publisher.track(self.manager.units(), self._launched())
        self.publisher.verify(self._job_states)
        if tasks:
            self.publisher.kick(sorted({t.unit for t in tasks if t.unit}))
        failed = any(o.error for o in outcomes)
        if failed and any(not o.error and not o.skipped for o in outcomes):
            self.trigger.fire()  # progress was made: go on with the rest right away
        return outcomes

    def execute(self, tasks: list[Task], *, halt: bool = True) -> list[Outcome]:
        """Run the tasks kind by kind, each kind as one batch (the units of a batch are independent: systemd
        gets them pipelined), one log line per task. After a batch with a failure the remaining kinds are
        skipped (``halt``): fleet's stop-at-first-failure, so a failed load is never followed by its start."""
        outcomes: list[Outcome] = []
        for i, (kind, group) in enumerate(_batches(tasks)):
            started = time.monotonic()
            failures = self._run_batch(kind, group)
            took = (time.monotonic() - started) * 1000
            if kind is TaskKind.UNLOAD:  # their states go now, not after the daemon-reload that follows
                self.publisher.track(self.manager.units(), self._launched())
                self.publisher.kick([t.unit for t in group])
            batch = f" (batch of {len(group)})" if len(group) > 1 else ""
            for task in group:
                error = failures.get(task.unit)
                if error is None:
                    log.info("task %s: done in %.1f ms%s", task, took, batch)
                    outcomes.append(Outcome(task))
                else:
                    log.error("task %s: failed: %s", task, error)
                    outcomes.append(Outcome(task, error=str(error) or type(error).__name__))
            if failures and halt:
                rest = [t for _, later in _batches(tasks)[i + 1:] for t in later]
                if rest:
                    log.warning("skipped %d remaining tasks after the failure (next pass retries)", len(rest))
                outcomes.extend(Outcome(t, skipped=True) for t in rest)
                break
        return outcomes

    def _run_batch(self, kind: TaskKind, tasks: list[Task]) -> dict[str, FleetError]:
        """One kind of task for many units; the failed units with their errors."""
        names = [t.unit for t in tasks]
        failures: dict[str, FleetError] = {}
        try:
            if kind is TaskKind.RELOAD:
                self.manager.reload()
            elif kind is TaskKind.UNLOAD:
                for name in names:
                    self._state.pop(name, None)
                    self._stale.discard(name)
                    self.publisher.clear_heartbeat(name)
                failures.update(self.manager.unload_many(names))
            elif kind is TaskKind.LOAD:
                self._loaded_at = time.monotonic()
                for name in names:
                    self._state[name] = JobState.LOADED
                    self._stale.discard(name)
                failures.update(self.manager.load_many({t.unit: t.unit_file for t in tasks if t.unit_file}))
            elif kind is TaskKind.STOP:
                for name in names:
                    self._state[name] = JobState.LOADED  # set first, like fleet: a refused stop is not retried
                    self.publisher.clear_heartbeat(name)
                failures.update(self.manager.stop_many(names))
            else:
                for name in names:
                    self._state[name] = JobState.LAUNCHED  # set first: a start systemd refuses is not retried
                    self.publisher.heartbeat(name)
                failures.update(self.manager.start_many(names))
        except FleetError as err:  # the whole call failed (D-Bus gone...): every task of the batch failed
            failures = dict.fromkeys(names, err)
        if kind is TaskKind.START:
            self._retry_later(failures, JobState.LOADED)
        elif kind is TaskKind.STOP:
            self._retry_later(failures, JobState.LAUNCHED)
        return failures

    def _retry_later(self, failures: Mapping[str, FleetError], previous: JobState) -> None:
        """A start/stop that failed for a transient reason (not a refusal by systemd) is retried next pass."""
        for name, err in failures.items():
            if isinstance(err, TransientSystemdError) or not isinstance(err, SystemdError):
                self._state[name] = previous
                if previous is JobState.LAUNCHED:
                    self.publisher.heartbeat(name)
                else:
                    self.publisher.clear_heartbeat(name)

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
