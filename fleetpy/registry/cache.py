"""``TreeCache``: an up-to-date local copy of one registry tree, kept current from the watch stream.

Adapter-side helper for the agent and the engine: read the tree once, then apply each watch event to the copy
instead of re-reading everything per event (fleet issue #804). While quiet it long-polls (one request per
``watch_timeout`` s); once a change comes it streams the changes that follow on one request until quiet again.
Re-reads only when the watch index is cleared (more than 1000 events behind), when far behind, or after an
error; a re-read logs only the keys that differ, so its readers need not start over. ``on_change`` fires after
each applied event (a loop Trigger). A paused copy (``pause``) follows nothing and is fed by ``replace`` instead: an
agent whose job records the leading engine relays (``fleetpy.agent.feed``).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable

from fleetpy.errors import FleetError
from fleetpy.registry.store import Event, IndexCleared, KVStore, Node

CATCH_UP_LAG = 100  # events behind the store before a re-read replaces the event-by-event catch-up
CHANGE_LOG = 100_000  # changed keys remembered for changes_since()
STREAM_QUIET = 0.5  # a watch stream with no event for this long ends: the tree is quiet again (or etcd dropped it)
GAP_WAIT = 1.0  # a watch that looks for changes the copy lacks waits this long for an answer (a busy etcd is slow)
log = logging.getLogger("fleetpy.registry.cache")


def _version(entry: tuple[int, str]) -> int:
    return entry[0]


class TreeCache:
    def __init__(self, store: KVStore, prefix: str, *, on_change: Callable[[Event | None], None] | None = None,
                 watch_timeout: float = 10.0, sparse: bool = False) -> None:
        """``sparse``: the prefix changes seldom while the rest of etcd changes a lot (one key: an inbox). Its
        changes are taken by long polls alone, one each (a stream would open behind the store's index and wait
        out ``GAP_WAIT`` for a change under the prefix every time), and a watch far behind the store's index is
        not a reason to re-read: the events under the prefix are few."""
        self.store = store
        self.prefix = prefix.rstrip("/")
        self.on_change = on_change
        self.watch_timeout = watch_timeout
        self.sparse = sparse
        self._lock = threading.Lock()
        self._nodes: dict[str, Node] = {}
        self._under: dict[str, set[str]] = {}  # directory -> every key below it (a recursive delete is O(its keys))
        self._log: list[tuple[int, str]] = []  # (version, key), versions ascending; CHANGE_LOG to 2 x CHANGE_LOG long
        self._floor = 0  # changes_since() knows nothing at or before this version (re-read, or log overflow)
        self._trims = 0  # how often the log lost its oldest entries
        self._index = 0
        self.loaded = threading.Event()
        self.reloads = 0
        self.version = 0  # bumped on every change of the copy's content (not when only the position moves)
        self.read_at = 0  # the store index of the last re-read: ``replace`` takes only what is newer
        self._paused = False  # the watch is not followed: its events are dropped, ``replace`` feeds the copy
        self._unpaused = threading.Event()
        self._unpaused.set()

    # -- reading (thread-safe copies) ---------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        with self._lock:
            return [self._nodes[k] for k in sorted(self._nodes)]

    def get(self, key: str) -> Node | None:
        with self._lock:
            return self._nodes.get(key)

    def peek(self, key: str) -> Node | None:
        """``get`` without the lock (one dict read is atomic; a re-read swaps in a complete new dict): for
        readers that look up many keys, each as of the moment it is read."""
        return self._nodes.get(key)

    def changes_since(self, version: int) -> tuple[int, dict[str, Node | None] | None]:
        """``(current version, {key changed after version: its node, None when removed})``; None instead of the
        dict when the copy was re-read since then or the change log does not reach back that far: the reader must
        read everything. Without the lock (the agents of a simulation share one busy cache, and a lock held by a
        thread that waits for the GIL makes a convoy): writers log a change before they bump ``version``, so
        every change up to the version returned is in the dict; a later one may be too (and in the next call)."""
        current, trims = self.version, self._trims
        if version < self._floor:
            return current, None
        log = self._log
        tail = log[bisect.bisect_right(log, version, key=_version):]
        if self._trims != trims:  # the log lost its oldest entries meanwhile: the bisection may have missed
            with self._lock:
                return self.changes_since(version)
        nodes = self._nodes  # a re-read swaps in a new, complete dict
        return current, {key: nodes.get(key) for _, key in tail}

    @property
    def index(self) -> int:
        with self._lock:
            return self._index

    # -- maintenance --------------------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the tree. The keys whose node differs from the copy's (by modified index) are logged as
        changes, so readers of ``changes_since`` take only those, not the whole tree, after a re-read."""
        listing = self.store.list(self.prefix)
        nodes: dict[str, Node] = {}
        under: dict[str, set[str]] = {}
        for node in listing.nodes:
            self._add(node, nodes, under)
        with self._lock:
            old, self._nodes, self._under = self._nodes, nodes, under
            self._index = listing.index
            self.read_at = listing.index
            version = self.version + 1
            changed = [key for key, node in self._nodes.items()
                       if (was := old.get(key)) is None or was.modified_index != node.modified_index
                       or was.value != node.value]
            changed += [key for key in old if key not in self._nodes]
            if not self.loaded.is_set() or len(changed) >= CHANGE_LOG:
                self._trims += 1  # before the log changes: see changes_since
                self._floor = version
                self._log.clear()
            else:
                for key in changed:
                    self._note(version, key)
            self.version = version  # last: a reader without the lock sees a version's changes before the version
        self.reloads += 1
        self.loaded.set()
        if self.on_change is not None:
            self.on_change(None)

    def apply(self, event: Event) -> None:
        node = event.node
        with self._lock:
            if self._paused:
                return  # a long poll or stream still under way when the watch was paused
            version = self.version + 1
            if event.action.removes:
                for key in self._removed_by(node.key.rstrip("/")):
                    self._remove(key)
                    self._note(version, key)
            elif not node.is_dir and node.value is not None:
                self._add(node)
                self._note(version, node.key)
            self._index = max(self._index, node.modified_index)
            self.version = version  # last (see reload)
        if self.on_change is not None:
            self.on_change(event)

    def replace(self, dirs: dict[str, list[Node]], *, index: int) -> bool:
        """Set what is under each directory of ``dirs`` to its nodes (none: the directory is gone), as the store
        held it at ``index`` or later (a relayed copy, while the watch is paused). Refused (False) when the copy's
        last re-read is at least as new: it already holds that, or more."""
        with self._lock:
            if index <= self.read_at:
                return False
            version = self.version + 1
            for directory, nodes in dirs.items():
                fresh = {node.key: node for node in nodes}
                for key in sorted(self._under.get(directory, ())):
                    if key not in fresh:
                        self._remove(key)
                        self._note(version, key)
                for key, node in fresh.items():
                    was = self._nodes.get(key)
                    if was is None or was.modified_index != node.modified_index or was.value != node.value:
                        self._add(node)
                        self._note(version, key)
            self.version = version  # last (see reload)
        if self.on_change is not None:
            self.on_change(None)
        return True

    def pause(self) -> None:
        """Stop following the watch (``run`` idles until ``resume``); the copy is then fed by ``replace``."""
        with self._lock:
            self._paused = True
            self._unpaused.clear()

    def resume(self) -> None:
        """Follow the watch again, from a re-read made here (the copy missed what was not relayed)."""
        self.reload()
        with self._lock:
            self._paused = False
            self._unpaused.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def _add(self, node: Node, nodes: dict[str, Node] | None = None, under: dict[str, set[str]] | None = None) -> None:
        nodes = self._nodes if nodes is None else nodes
        under = self._under if under is None else under
        if node.key not in nodes:
            for parent in self._parents(node.key):
                under.setdefault(parent, set()).add(node.key)
        nodes[node.key] = node

    def _remove(self, key: str) -> None:
        del self._nodes[key]
        for parent in self._parents(key):
            children = self._under.get(parent)
            if children is not None:
                children.discard(key)
                if not children:
                    del self._under[parent]

    def _note(self, version: int, key: str) -> None:
        """Log a change of ``key`` at ``version``; past 2 x CHANGE_LOG entries the oldest CHANGE_LOG go (nothing is
        known at or before the last version dropped)."""
        self._log.append((version, key))
        if len(self._log) > 2 * CHANGE_LOG:
            self._trims += 1  # before the log changes: see changes_since
            self._floor = self._log[CHANGE_LOG - 1][0]
            del self._log[:CHANGE_LOG]

    def _removed_by(self, key: str) -> list[str]:
        """The keys a delete of ``key`` removes: the key itself, everything below a directory, or everything
        when the tree's root (or a directory above it) goes."""
        if key in self._nodes:
            return [key]
        if self.prefix == key or self.prefix.startswith(key + "/"):
            return sorted(self._nodes)
        return sorted(self._under.get(key, ()))

    def _parents(self, key: str) -> list[str]:
        """The directories between the tree's root (excluded) and ``key``."""
        out = []
        parent = key.rpartition("/")[0]
        while len(parent) > len(self.prefix) and parent.startswith(self.prefix):
            out.append(parent)
            parent = parent.rpartition("/")[0]
        return out

    def step(self) -> bool:
        """Wait for one event (or the watch timeout) and apply it; reload when needed. True when the tree
        changed (an event, or a re-read)."""
        if not self.loaded.is_set():
            self.reload()
            return True
        try:
            event = self.store.watch(self.prefix, after_index=self.index, timeout=self.watch_timeout)
            if event is None:
                self._catch_up()
                return False
        except IndexCleared:
            log.info("watch on %s fell behind the event history: re-reading", self.prefix)
            self.reload()
            return True
        self.apply(event)
        self._reload_if_far_behind(event)
        return True

    def follow(self, quiet: float = STREAM_QUIET) -> None:
        """Stream the changes (one request for a burst, where ``step`` costs one per event) until none came for
        ``quiet`` s. The stream is live from when it opens (``KVStore.stream``); the changes between the copy's
        index and there are taken first (``_fill``). A stream the store ends is followed by a new one at once,
        its gap filled the same way. etcd stops sending to a reader 100 events behind without ending the
        stream: ``quiet`` bounds that stall, and ``step`` then finds what was missed."""
        if not self.loaded.is_set():
            self.reload()
            return
        try:
            while True:
                stream = self.store.stream(self.prefix, timeout=quiet)
                try:
                    if not self._fill(stream.opened):
                        return  # the gap is not known to be empty: long polls (``step``) take it from there
                    for event in stream:
                        if self._paused:
                            return
                        if event.node.modified_index > self._index:  # else the fill's re-read had it (an int
                            self.apply(event)  # read is atomic: no lock per event of a busy stream)
                finally:
                    stream.close()
                if stream.quiet:
                    return
        except IndexCleared:
            log.info("watch on %s fell behind the event history: re-reading", self.prefix)
            self.reload()

    def _fill(self, opened: int) -> bool:
        """Bring the copy up to ``opened`` (where a live stream starts): event by event from the store's history
        (a request each) while few come, else one re-read. False when no change under the prefix came for
        ``GAP_WAIT`` s: the gap may hold only other trees' writes, but a watch that timed out proves nothing (etcd
        may just be slow to answer), so the copy's index stays. Raises IndexCleared when the history is outrun."""
        for _ in range(self._catch_up_lag()):
            if self.index >= opened or self._paused:
                return not self._paused
            event = self.store.watch(self.prefix, after_index=self.index, timeout=GAP_WAIT)
            if event is None:
                return False
            self.apply(event)  # one past ``opened`` comes on the stream too, and is skipped there
        if self.index < opened:
            log.debug("watch on %s: more than %d events to catch up: re-reading", self.prefix,
                      self._catch_up_lag())
            self.reload()
        return True

    def _reload_if_far_behind(self, event: Event) -> bool:
        """Far behind a burst of writes, one recursive read is cheaper than a request per event to come."""
        behind = event.store_index - event.node.modified_index
        if self.sparse or behind <= self._catch_up_lag():
            return False
        log.debug("watch on %s is %d events behind: re-reading", self.prefix, behind)
        self.reload()
        return True

    def _catch_up_lag(self) -> int:
        """How many events behind make a re-read cheaper: a read costs about as much as 1 request per 50 nodes."""
        with self._lock:
            return max(CATCH_UP_LAG, len(self._nodes) // 50)

    def _catch_up(self) -> None:
        """After a quiet watch, move the position up to the store's index, so that writes elsewhere in etcd do not
        push it out of the 1000-event history (which would force a full re-read). An event under the prefix at or
        below that index would make the watch below return it instead, if etcd answers within ``GAP_WAIT`` s (the
        wait costs nothing while the tree is quiet: any change ends it)."""
        before = self.index
        if self.sparse:
            self._catch_up_by_reading(before)
            return
        latest = self.store.current_index()
        if latest <= before:
            return
        event = self.store.watch(self.prefix, after_index=before, timeout=GAP_WAIT)
        if event is not None:
            self.apply(event)
            return
        with self._lock:
            self._index = max(self._index, latest)

    def _catch_up_by_reading(self, before: int) -> None:
        """A sparse copy's catch-up: one read of its few keys, whose answer proves what the prefix held at the
        store's index (a watch that times out proves nothing, and a missed relay message is not sent again)."""
        listing = self.store.list(self.prefix)
        with self._lock:
            same = len(listing.nodes) == len(self._nodes) and all(
                (was := self._nodes.get(node.key)) is not None and was.modified_index == node.modified_index
                for node in listing.nodes)
            if same:
                self._index = max(self._index, listing.index)
        if not same:
            log.info("watch on %s missed a change: re-reading", self.prefix)
            self.reload()

    def run(self, stop: threading.Event, *, error_pause: float = 1.0) -> None:
        """Follow the tree until ``stop``; errors are logged once per outage and retried with a re-read."""
        failing = False
        while not stop.is_set():
            if self._paused:
                self._unpaused.wait(1.0)  # resume() sets it; a stop is seen within a second
                continue
            try:
                if failing:
                    self.reload()
                if self.step() and not self.sparse:  # a long poll while quiet (one request per watch_timeout s)...
                    self.follow()  # ...then streaming while the changes keep coming (a sparse key: a poll each)
                if failing:
                    log.info("watch on %s recovered", self.prefix)
                failing = False
            except FleetError as err:
                if stop.is_set():
                    return  # stopped while a request was out (etcd going away with us): not an outage
                if not failing:
                    log.warning("watch on %s failed: %s", self.prefix, err)
                failing = True
                stop.wait(error_pause)
