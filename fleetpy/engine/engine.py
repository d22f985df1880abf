"""The engine component: leader-elected scheduling, ``run(stop)`` in a daemon thread.

I/O edge of the engine. Each pass: re-check leadership (``lease.Leadership``); take a snapshot from watch-
maintained copies of the ``job/`` and ``machines/`` trees (``TreeCache``, read once per leadership term and then
kept current from the watch stream, re-read only on IndexCleared or after an error); ``plan`` it (pure); write
the schedule changes with CAS (``schedule_unit`` / ``unschedule_unit``), one log line per task; write or clear
each unit's scheduling reason. Passes run on relevant watch events (coalesced) and on a periodic safety tick;
every engine also watches ``lease/`` so that a released or expired lease is taken over at once. A term's copies
live in ``follower.Follower``; with ``relay``, the term also relays each machine's job records to its inbox
(``relay.Relay``, in a thread of its own).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from fleetpy.engine.cluster import ClusterState, UnitSpec
from fleetpy.engine.damper import LossDamper
from fleetpy.engine.follower import Follower
from fleetpy.engine.lease import Leadership, lease_watch
from fleetpy.engine.plan import Plan, Task, TaskKind, plan
from fleetpy.engine.relay import Relay
from fleetpy.engine.sweep import Sweeper
from fleetpy.errors import CASConflict, RegistryError
from fleetpy.loop import Trigger, run_periodic
from fleetpy.model.job import Requirements
from fleetpy.observe import NULL, PassMetrics
from fleetpy.parallel import pmap
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JobRecord, decode_machines
from fleetpy.registry.registry import ENGINE_VERSION, Registry
from fleetpy.registry.store import Event

log = logging.getLogger("fleetpy.engine")
WRITE_BATCH = 256  # units written concurrently between two lease checks of a long pass

class Engine:
    """fleet's engine. Built by the daemon's composition root; ``run(stop)`` runs until ``stop`` is set."""

    def __init__(self, registry: Registry, machine_id: str, *, reconcile_interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, version: int = ENGINE_VERSION,
                 disable_engine: bool = False, watch_timeout: float = 10.0, min_gap: float = 0.0,
                 mass_loss_hold: float | None = None, reason_resync: float = 60.0, agent_ttl: float = 30.0,
                 jobs: TreeCache | None = None, relay: bool = False,
                 on_term: Callable[[bool], None] | None = None) -> None:
        """``agent_ttl``: the machines' TTL (this daemon's own, as fleet assumes one for the cluster); an etcd
        outage of half of it or more can expire a healthy agent, so only such an outage makes the damper hold
        machines found missing afterwards (``LossDamper``). ``jobs``: the daemon's watch-maintained copy of
        ``job/``, which the agent reads too (the daemon follows it and passes its events to ``on_job_event``): a
        leader then decodes each job event once, on one watch, instead of twice; None: each term keeps its own.
        ``relay``: while leading (and following the watch), relay each machine's job records to its inbox
        (``engine/relay.py``). ``on_term``: called with True before a term's first read, False after it ends
        (the daemon's job feed follows ``job/`` itself while this engine leads)."""
        self.registry = registry
        self.machine_id = machine_id
        self.metrics: PassMetrics = NULL
        self._was_leading = False
        self.reconcile_interval = reconcile_interval
        self.clock = clock
        self.lease_ttl = max(1, math.ceil(5 * reconcile_interval))
        self.leadership = Leadership(registry, machine_id, ttl=self.lease_ttl, version=version, clock=clock,
                                     renew_every=reconcile_interval, disabled=disable_engine)
        self.watch_timeout = watch_timeout
        self.min_gap = min_gap
        self.reason_resync = reason_resync
        self.trigger = Trigger()
        self.damper = LossDamper(15 * reconcile_interval if mass_loss_hold is None else mass_loss_hold,
                                 outage=agent_ttl / 2)
        self.sweeper = Sweeper(registry)  # removes the TTL-less states of machines that are gone
        self.jobs = jobs
        self.relaying = relay
        self.on_term = on_term
        self._follower: Follower | None = None
        self._lease_watch: TreeCache | None = None  # while run() runs
        self._watching = False  # run() follows the watch stream; reconcile_once() alone re-reads each call
        self._overlay: dict[str, tuple[str | None, float]] = {}  # our target writes the cache has not shown yet
        self._requirements: dict[tuple[str, str], Requirements] = {}  # (name, unit hash) -> parsed
        self._reasons: dict[str, str] | None = None  # what fleetpy/reasons holds, as far as we know
        self._reasons_read_at = float("-inf")
        self._missing_bodies: set[str] = set()
        self._held: frozenset[str] = frozenset()
        self._settled: tuple[int, int] | None = None  # cache indexes of the last pass that found nothing to do
        self.passes = 0

    # -- lifecycle ------------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        if self.leadership.disabled:
            log.info("engine: disabled on this machine (disable_engine)")
            return
        self._watching = True
        lease_done = threading.Event()
        lease = self._lease_watch = lease_watch(self.registry, self.trigger.fire, watch_timeout=self.watch_timeout)
        threading.Thread(target=lease.run, args=(lease_done,), name="engine-watch-lease", daemon=True).start()
        try:
            run_periodic(self.reconcile_once, interval=self.reconcile_interval, stop=stop, trigger=self.trigger,
                         name="engine", min_gap=self.min_gap)
        finally:
            self.leadership.release()  # first: the others take over while this term's watches wind down
            lease_done.set()
            self._end_term()
            self._watching = False

    def on_job_event(self, event: Event | None) -> None:
        """The shared ``jobs`` cache's callback (its watch thread): wakes the loop while leading."""
        follower = self._follower
        if follower is not None and not follower.owns_jobs:
            follower.job_changed(event)

    def _end_term(self) -> None:
        if self._follower is not None:
            self._follower.stop()
            if self.on_term is not None:
                self.on_term(False)
        self._follower = None
        self._settled = None
        self._overlay.clear()
        self._reasons = None
        self.damper.reset()
        self.sweeper.new_term()

    # -- one pass -------------------------------------------------------------------------------------------
    def reconcile_once(self) -> list[Task]:
        """One pass if this engine leads; returns the tasks written. Without ``run()``, re-reads the trees."""
        asked = self.clock()
        try:
            leading = self.leadership.check()
        except RegistryError:
            if not self.damper.failing:
                self.trigger.fire()  # retry at once: a lone timeout then ends its streak well short of an outage
            self.damper.failed(asked)
            raise
        outage = self.damper.succeeded(self.clock())
        if outage is not None:
            log.warning("engine: etcd was unreachable for %.1fs: machines found missing now are held for up to "
                        "%.0fs while their agents re-register", outage, self.damper.hold)
        if leading != self._was_leading:
            self.metrics.leader(leading)
            self._was_leading = leading
        if not leading:
            if self._follower is not None:
                self._end_term()
            return []
        follower = self._follower
        if follower is None:
            if self.on_term is not None:
                self.on_term(True)
            relay = Relay(self.registry, self.machine_id) if self.relaying and self._watching else None
            follower = self._follower = Follower(self.registry, self.trigger, self.watch_timeout,
                                                  self.jobs if self._watching else None, relay)
            if self._watching:
                follower.start(self._is_global, self.reconcile_interval)
        if not self._watching:
            follower.reload()
        if not follower.loaded:
            return []  # the first read of this term fires the trigger when it lands
        inputs = (follower.jobs.version, follower.machines.version)
        if inputs == self._settled:
            return []  # same caches, nothing pending: the plan would be the same empty one
        self.passes += 1
        started = time.monotonic()
        now = self.clock()
        cluster = self.snapshot(follower, now)
        result = plan(cluster)
        done = self.execute(result)
        for task in done:
            self.metrics.task("engine", str(task.kind))
        for _ in range(len(result.tasks) - len(done)):
            self.metrics.task("engine", "unfinished", ok=False)
        self.metrics.reconcile("engine", time.monotonic() - started, ok=len(done) == len(result.tasks),
                               reason="run" if len(done) == len(result.tasks) else "schedule_failure")
        if len(done) == len(result.tasks):
            self.write_reasons(result, now)
        self.sweeper.sweep(machines=follower.machines.nodes(), held=cluster.held, jobs=follower.jobs.nodes)
        quiet = (not result.tasks and not cluster.held and not self._overlay and not self._missing_bodies
                 and not self.sweeper.due)
        self._settled = inputs if quiet and self._watching else None
        return done

    def snapshot(self, follower: Follower, now: float) -> ClusterState:
        keys = self.registry.keys
        jobs = follower.records.records()
        machines = decode_machines(keys, follower.machines.nodes())
        specs = []
        for name in [n for n in self._overlay if n not in jobs]:
            del self._overlay[name]
        for name, job in jobs.items():
            requirements = self._requirements_of(name, job.unit_hash)
            if requirements is None:
                continue
            specs.append(UnitSpec.of(name, requirements, job.target_state, self._target(name, job.target, now)))
        if len(self._requirements) > 2 * len(jobs) + 64:  # forget old (name, hash) pairs
            current = {(name, job.unit_hash) for name, job in jobs.items()}
            self._requirements = {k: v for k, v in self._requirements.items() if k in current}
        referenced = {s.target for s in specs if s.target is not None and not s.is_global}
        held = self.damper.observe(now, present=set(machines), referenced=referenced)
        if held and held != self._held:
            log.warning("engine: %d of %d machines missing at once or right after an etcd outage; holding their "
                        "units for up to %.0fs (etcd trouble expires every TTL together)", len(held),
                        len(held) + len(machines), self.damper.hold)
        self._held = held
        return ClusterState.of(specs, machines.values(), held=held)

    def _target(self, name: str, cached: str | None, now: float) -> str | None:
        """The target as the cache shows it, unless we wrote another one the watch has not delivered yet."""
        entry = self._overlay.get(name)
        if entry is None:
            return cached
        written, expires = entry
        if cached == written or now >= expires:
            del self._overlay[name]
            return cached
        return written

    def _is_global(self, name: str, job: JobRecord) -> bool:
        requirements = self._requirements_of(name, job.unit_hash)
        return requirements is not None and requirements.is_global

    def _requirements_of(self, name: str, unit_hash: str) -> Requirements | None:
        key = (name, unit_hash)
        requirements = self._requirements.get(key)
        if requirements is None:
            body = self.registry.body(unit_hash)
            if body is None:
                if name not in self._missing_bodies:
                    log.warning("engine: %s: unit body %s missing from the registry; not scheduling it", name,
                                unit_hash[:12])
                self._missing_bodies.add(name)
                return None
            self._missing_bodies.discard(name)
            requirements = self._requirements[key] = Requirements.of(body, name)
        return requirements

    def execute(self, result: Plan) -> list[Task]:
        """Write the tasks, one log line each, in plan order. Units are independent, so their writes go out
        concurrently (one unit's tasks stay in order); the targets of units with a lone SCHEDULE task (a burst of
        new units) in one pipelined create per batch. A CAS loss skips that unit's later tasks (the snapshot was
        stale: the next pass sees the change); any other registry error ends the pass once the writes in flight
        are done."""
        groups: dict[str, list[Task]] = {}
        for task in result.tasks:
            groups.setdefault(task.unit, []).append(task)

        def write(tasks: list[Task]) -> list[tuple[Task, str]]:
            outcomes: list[tuple[Task, str]] = []
            for task in tasks:
                if not self.leadership.leading():
                    return [*outcomes, *((t, "lease") for t in tasks[len(outcomes):])]
                try:
                    if task.kind is TaskKind.SCHEDULE:
                        self.registry.schedule_unit(task.unit, task.machine_id)
                    else:
                        self.registry.unschedule_unit(task.unit, task.machine_id)
                except CASConflict:
                    return [*outcomes, (task, "cas")]
                except Exception as err:  # re-raised below, once the other units' writes are accounted for
                    errors.append(err)
                    return [*outcomes, (task, "error")]
                outcomes.append((task, "done"))
            return outcomes

        def schedule(tasks: list[Task]) -> list[tuple[Task, str]]:
            """Units whose one task is a SCHEDULE: their targets in one pipelined create."""
            if not self.leadership.leading():
                return [(task, "lease") for task in tasks]
            try:
                created = self.registry.schedule_units([(task.unit, task.machine_id) for task in tasks])
            except Exception as err:  # re-raised below; a retry is safe: a target set meanwhile is a CAS loss
                errors.append(err)
                return [(task, "error") for task in tasks]
            return [(task, "done" if ok else "cas") for task, ok in zip(tasks, created, strict=True)]

        errors: list[Exception] = []
        outcome_of: dict[Task, str] = {}
        units = list(groups.values())
        lost = False
        for start in range(0, len(units), WRITE_BATCH):
            # a long pass (thousands of writes on a slow etcd) outlives the lease: renew it between batches
            # (check() renews once renew_every has passed), instead of stopping at the deadline of the last renewal
            if errors:
                break
            if start and not self._renew_during_pass():
                lost = True
                break
            batch = units[start:start + WRITE_BATCH]
            single = [tasks[0] for tasks in batch if len(tasks) == 1 and tasks[0].kind is TaskKind.SCHEDULE]
            if single:
                outcome_of.update(schedule(single))
            for outcomes in pmap(write, [tasks for tasks in batch if tasks[0] not in outcome_of]):
                outcome_of.update(outcomes)
        done: list[Task] = []
        undone = 0
        for task in result.tasks:
            outcome = outcome_of.get(task, "skipped")
            if outcome == "done":
                log.info("engine: %s", task)
                target = task.machine_id if task.kind is TaskKind.SCHEDULE else None
                self._overlay[task.unit] = (target, self.clock() + self.lease_ttl)
                done.append(task)
            elif outcome == "cas":
                log.info("engine: %s skipped: changed meanwhile", task)
            else:
                undone += 1
        if lost or any(o == "lease" for o in outcome_of.values()):
            log.warning("engine: lease expired during a pass; %d tasks left undone", undone)
        if errors:
            raise errors[0]
        return done

    def _renew_during_pass(self) -> bool:
        try:
            return self.leadership.check()
        except RegistryError:
            return self.leadership.leading()  # keep writing until the deadline; the next pass retries the renewal

    def write_reasons(self, result: Plan, now: float) -> None:
        """Set ``fleetpy/reasons/<unit>`` for each unit left unscheduled (when it changes), clear the others."""
        if self._reasons is None or now - self._reasons_read_at >= self.reason_resync:
            self._reasons = self.registry.reasons()
            self._reasons_read_at = now
        for name, reason in result.unplaced.items():
            if self._reasons.get(name) != reason:
                self.registry.set_reason(name, reason)
                self._reasons[name] = reason
                log.info('engine: cannot schedule %s reason="%s"', name, reason)
        for name in [n for n in self._reasons if n not in result.unplaced]:
            self.registry.clear_reason(name)
            del self._reasons[name]
