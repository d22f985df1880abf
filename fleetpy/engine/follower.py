"""``Follower``: one leadership term's watch-maintained copies of ``job/`` and ``machines/``, what wakes the engine's
loop, and the term's relay thread (``engine/relay.py``).

I/O edge of the engine: the copies are ``TreeCache``s (the daemon's copy of ``job/`` when it shares one, followed
by the daemon), read once per term and then kept current from the watch stream.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from fleetpy.engine.relay import Relay
from fleetpy.loop import Trigger
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JobRecord
from fleetpy.registry.jobview import JobView
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Event

_JOB_FIELDS = frozenset({"object", "target-state", "target"})  # job-state heartbeats do not wake the engine


class Follower:
    """One leadership term's watch-maintained copies of ``job/`` and ``machines/``, and what wakes the loop.
    ``jobs``: the daemon's copy of ``job/``, followed by the daemon (which passes its events to ``job_changed``);
    None: the term follows its own."""

    def __init__(self, registry: Registry, trigger: Trigger, watch_timeout: float,
                 jobs: TreeCache | None = None, relay: Relay | None = None) -> None:
        """``relay``: woken by every change (``job-state`` heartbeats too), and run in a thread of its own."""
        self.registry = registry
        self.trigger = trigger
        self.relay = relay
        store, keys = registry.store, registry.keys
        self.owns_jobs = jobs is None
        self.jobs = jobs if jobs is not None else TreeCache(store, keys.tree(Tree.JOB), on_change=self.job_changed,
                                                            watch_timeout=watch_timeout)
        self.records = JobView(self.jobs, keys)  # decoded pass by pass: only what changed since the last pass
        self.machines = TreeCache(store, keys.tree(Tree.MACHINES), on_change=self._machine_changed,
                                  watch_timeout=watch_timeout)
        self._machine_values: dict[str, str | None] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def job_changed(self, event: Event | None) -> None:
        if self.relay is not None:
            self.relay.trigger.fire()
        parts = self.registry.keys.split(event.node.key) if event is not None else ()
        if event is None or len(parts) < 3 or parts[2] in _JOB_FIELDS:
            self.trigger.fire()

    def _machine_changed(self, event: Event | None) -> None:
        """Machine heartbeats rewrite the same value: only a change of the set or of a value wakes the loop."""
        if event is None:
            self._machine_values = {n.key: n.value for n in self.machines.nodes()}
        elif event.action.removes:
            self._machine_values.pop(event.node.key, None)
        elif self._machine_values.get(event.node.key) != event.node.value:
            self._machine_values[event.node.key] = event.node.value
        else:
            return
        self.trigger.fire()
        if self.relay is not None:
            self.relay.trigger.fire()

    @property
    def loaded(self) -> bool:
        return self.jobs.loaded.is_set() and self.machines.loaded.is_set()

    def start(self, is_global: Callable[[str, JobRecord], bool], interval: float) -> None:
        for name, cache in (("jobs", self.jobs), ("machines", self.machines)):
            if cache is self.jobs and not self.owns_jobs:
                continue
            thread = threading.Thread(target=cache.run, args=(self._stop,), name=f"engine-watch-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.relay is not None:
            relay = functools.partial(self.relay.run, jobs=self.jobs, machines=self.machine_ids, is_global=is_global,
                                      interval=interval)
            threading.Thread(target=relay, args=(self._stop,), name="engine-relay", daemon=True).start()

    def machine_ids(self) -> list[str]:
        """The machines whose object the copy holds (no decoding: the relay asks after every change)."""
        keys = self.registry.keys
        return [parts[1] for node in self.machines.nodes()
                if len(parts := keys.split(node.key)) == 3 and parts[2] == "object"]

    def reload(self) -> None:
        self.jobs.reload()
        self.machines.reload()

    def stop(self) -> None:
        """Stop following; a watch blocked in a long poll ends on its own (daemon threads: not waited for, so
        that a shutdown or a lost term is not delayed by a long poll)."""
        self._stop.set()
