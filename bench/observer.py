"""``Observer``: what the cluster benchmarks wait for (units scheduled, active, gone), kept current from watch
streams of the ``job/`` and ``states/`` trees in the bench's own process.

The bench used to list a whole tree every 5-50 ms and decode it; at 1,000 units that cost it about half a core,
taken from the two-core machine running the cluster it measures (and each listing was a request etcd served). A
watch costs one decoded event per change instead, and a check is a few set operations.
"""

from __future__ import annotations

import json
import threading

from fleetpy.registry.cache import TreeCache
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Event


class Observer:
    """Follows ``states/`` from the start and ``job/`` only once asked (``follow_jobs``, or the first
    ``scheduled``): a 1,000-unit start makes 4,000 job events, and every watcher of the tree costs etcd and its
    own process a share of the two cores the cluster is measured on."""

    def __init__(self, registry: Registry) -> None:
        self.keys = registry.keys
        self._lock = threading.Lock()
        self._states: dict[str, dict[str, str]] = {}  # unit -> machine -> ActiveState
        self._targets: set[str] = set()  # units with job/<unit>/target
        self._stop = threading.Event()
        self.states = TreeCache(registry.store, self.keys.tree(Tree.STATES), on_change=self._state_changed,
                                watch_timeout=60)
        self.jobs = TreeCache(registry.store, self.keys.tree(Tree.JOB), on_change=self._job_changed,
                              watch_timeout=60)
        self._following_jobs = False
        self._follow(self.states)
        self._state_changed(None)

    def follow_jobs(self) -> None:
        """Start following ``job/`` (once; returns when the copy is loaded)."""
        with self._lock:
            if self._following_jobs:
                return
            self._following_jobs = True
        self._follow(self.jobs)
        self._job_changed(None)

    def _follow(self, cache: TreeCache) -> None:
        threading.Thread(target=cache.run, args=(self._stop,), name="bench-observer", daemon=True).start()
        if not cache.loaded.wait(30):
            raise RuntimeError("the bench's observer could not read the registry")

    def close(self) -> None:
        self._stop.set()

    # -- what the bench asks --------------------------------------------------------------------------------
    def active(self, names: set[str]) -> int:
        """How many of ``names`` some machine reports ``active``."""
        with self._lock:
            return sum(1 for name in names if "active" in self._states.get(name, {}).values())

    def machines_active(self, name: str) -> int:
        """On how many machines ``name`` is ``active`` (a global unit)."""
        with self._lock:
            return sum(1 for state in self._states.get(name, {}).values() if state == "active")

    def none_left(self, names: set[str]) -> bool:
        """No machine reports a state for any of ``names``."""
        with self._lock:
            return not any(self._states.get(name) for name in names)

    def scheduled(self, names: set[str]) -> int:
        """How many of ``names`` have a target machine."""
        self.follow_jobs()
        with self._lock:
            return len(names & self._targets)

    # -- kept current from the watches -------------------------------------------------------------------------
    def _state_changed(self, event: Event | None) -> None:
        parts = self.keys.split(event.node.key) if event is not None else ()
        if event is not None and len(parts) == 2 and event.action.removes:  # a unit's directory went
            with self._lock:
                self._states.pop(parts[1], None)
            return
        if len(parts) != 3 or event is None:  # a re-read, or the tree went: rebuild from the copy
            states: dict[str, dict[str, str]] = {}
            for node in self.states.nodes():
                split = self.keys.split(node.key)
                if len(split) == 3 and node.value is not None:
                    states.setdefault(split[1], {})[split[2]] = _active_state(node.value)
            with self._lock:
                self._states = states
            return
        _, unit, machine = parts
        with self._lock:
            if event.action.removes or event.node.value is None:
                self._states.get(unit, {}).pop(machine, None)
            else:
                self._states.setdefault(unit, {})[machine] = _active_state(event.node.value)

    def _job_changed(self, event: Event | None) -> None:
        parts = self.keys.split(event.node.key) if event is not None else ()
        if event is not None and len(parts) == 2 and event.action.removes:  # a unit's directory went (destroy):
            with self._lock:  # one set operation, where a rebuild scans the whole copy per destroyed unit
                self._targets.discard(parts[1])
            return
        if event is None or len(parts) < 3:  # a re-read, or the tree went: rebuild from the copy
            targets = set()
            for node in self.jobs.nodes():
                split = self.keys.split(node.key)
                if len(split) == 3 and split[2] == "target" and node.value:
                    targets.add(split[1])
            with self._lock:
                self._targets = targets
            return
        if parts[2] != "target":
            return
        with self._lock:
            if event.action.removes or not event.node.value:
                self._targets.discard(parts[1])
            else:
                self._targets.add(parts[1])


def _active_state(raw: str) -> str:
    try:
        value = json.loads(raw)
    except ValueError:
        return ""
    return str(value.get("activeState", "")) if isinstance(value, dict) else ""
