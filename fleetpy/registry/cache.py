"""``TreeCache``: an up-to-date local copy of one registry tree, kept current from the watch stream.

Adapter-side helper for the agent and the engine: read the tree once, then apply each watch event to the copy
instead of re-reading everything per event (fleet issue #804). Re-reads only when the watch index is cleared
(more than 1000 events behind) or after an error. ``on_change`` fires after each applied event (a loop Trigger).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from fleetpy.errors import FleetError
from fleetpy.registry.store import Event, IndexCleared, KVStore, Node

CATCH_UP_LAG = 100  # events behind the store before a re-read replaces the event-by-event catch-up
log = logging.getLogger("fleetpy.registry.cache")


class TreeCache:
    def __init__(self, store: KVStore, prefix: str, *, on_change: Callable[[Event | None], None] | None = None,
                 watch_timeout: float = 10.0) -> None:
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self._lock = threading.Lock()
        self._nodes: dict[str, Node] = {}
        self._index = 0
        self.loaded = threading.Event()
        self.reloads = 0
        self.version = 0  # bumped on every change of the copy's content (not when only the position moves)

    # -- reading (thread-safe copies) ---------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        with self._lock:
            return [self._nodes[k] for k in sorted(self._nodes)]

    def get(self, key: str) -> Node | None:
        with self._lock:
            return self._nodes.get(key)

    @property
    def index(self) -> int:
        with self._lock:
            return self._index

    # -- maintenance --------------------------------------------------------------------------------------
    def reload(self) -> None:
        listing = self.store.list(self.prefix)
        with self._lock:
            self._nodes = {n.key: n for n in listing.nodes}
            self._index = listing.index
            self.version += 1
        self.reloads += 1
        self.loaded.set()
        if self.on_change is not None:
            self.on_change(None)

    def apply(self, event: Event) -> None:
        node = event.node
        with self._lock:
            if event.action.removes:
                if node.is_dir or node.key not in self._nodes:
                    base = node.key.rstrip("/") + "/"
                    for key in [k for k in self._nodes if k.startswith(base) or k == node.key]:
                        del self._nodes[key]
                else:
                    del self._nodes[node.key]
            elif not node.is_dir and node.value is not None:
                self._nodes[node.key] = node
            self._index = max(self._index, node.modified_index)
            self.version += 1
        if self.on_change is not None:
            self.on_change(event)

    def step(self) -> None:
        """Wait for one event (or the watch timeout) and apply it; reload when needed."""
        if not self.loaded.is_set():
            self.reload()
            return
        try:
            event = self.store.watch(self.prefix, after_index=self.index, timeout=self.watch_timeout)
            if event is None:
                self._catch_up()
                return
        except IndexCleared:
            log.info("watch on %s fell behind the event history: re-reading", self.prefix)
            self.reload()
            return
        self.apply(event)
        if event.store_index - event.node.modified_index > self._catch_up_lag():
            # far behind a burst of writes (etcd's watch answers one event per request): one recursive read
            # is cheaper than a request per event still to come (300 units started at once: ~900 events)
            log.debug("watch on %s is %d events behind: re-reading", self.prefix,
                      event.store_index - event.node.modified_index)
            self.reload()

    def follow(self) -> None:
        """Apply the events of one watch stream until it ends: quiet for ``watch_timeout`` s, closed by the
        store, or after an event from the history (etcd answers a watch that starts in the past with that one
        event: see ``KVStore.watch_stream``); far behind, one re-read instead. ``run`` calls it in a loop."""
        if not self.loaded.is_set():
            self.reload()
            return
        try:
            for event in self.store.watch_stream(self.prefix, after_index=self.index, timeout=self.watch_timeout):
                self.apply(event)
                behind = event.store_index - event.node.modified_index
                if behind >= 0:  # from the history: this stream ends here
                    if behind > self._catch_up_lag():
                        log.debug("watch on %s is %d events behind: re-reading", self.prefix, behind)
                        self.reload()
                    return
        except IndexCleared:
            log.info("watch on %s fell behind the event history: re-reading", self.prefix)
            self.reload()
            return
        self._catch_up()

    def _catch_up_lag(self) -> int:
        """How many events behind make a re-read cheaper: a read costs about as much as 1 request per 50 nodes."""
        with self._lock:
            return max(CATCH_UP_LAG, len(self._nodes) // 50)

    def _catch_up(self) -> None:
        """After a quiet watch, move the position up to the store's index, so that writes elsewhere in etcd do not
        push it out of the 1000-event history (which would force a full re-read). Safe: an event under the prefix
        at or below that index would make the zero-wait watch below return it instead."""
        before = self.index
        latest = self.store.current_index()
        if latest <= before:
            return
        event = self.store.watch(self.prefix, after_index=before, timeout=0.05)
        if event is not None:
            self.apply(event)
            return
        with self._lock:
            self._index = max(self._index, latest)

    def run(self, stop: threading.Event, *, error_pause: float = 1.0) -> None:
        """Follow the tree until ``stop``; errors are logged once per outage and retried with a re-read."""
        failing = False
        while not stop.is_set():
            try:
                if failing:
                    self.reload()
                self.follow()
                if failing:
                    log.info("watch on %s recovered", self.prefix)
                failing = False
            except FleetError as err:
                if not failing:
                    log.warning("watch on %s failed: %s", self.prefix, err)
                failing = True
                stop.wait(error_pause)
