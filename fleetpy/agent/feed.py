"""``JobFeed``: how an agent's copy of ``job/`` is kept current: its own watch of the tree, or the leader's relay.

The copy (a ``TreeCache`` of ``job/``, read by the agent's ``JobView`` either way) is fed in one of two modes:

- ``WATCH``: the copy follows etcd's watch of ``job/`` (every unit's every change: fleet's way);
- ``RELAY``: the watch is paused and the copy takes the messages the leading engine writes to this machine's
  inbox (``engine/relay.py``): the current keys of the units that concern this machine, as of an index. Each
  entry into this mode re-reads the tree, and a message is taken only when newer than the last re-read.

The feed is in ``RELAY`` while the engine that sent the newest message holds the lease (read on each message
that names another sender or a reset, and every ``check_interval`` s) and this machine does not lead (the leader's
engine reads the same copy and needs the whole tree); else in ``WATCH``. A relay that goes quiet because its
leader died is noticed when the lease expires or moves; a real fleet engine leading a mixed cluster never writes
an inbox, so the feed stays in ``WATCH``. Every ``resync`` s in ``RELAY`` the tree is re-read anyway.
"""

from __future__ import annotations

import enum
import logging
import threading
import time

from fleetpy.errors import CASConflict, FleetError, RegistryError
from fleetpy.loop import Trigger, run_periodic
from fleetpy.registry import relayed
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Event, Node

log = logging.getLogger("fleetpy.agent.feed")

CHECK_INTERVAL = 5.0
RESYNC = 300.0


class Mode(enum.StrEnum):
    WATCH = "watch"
    RELAY = "relay"


class JobFeed:
    def __init__(self, registry: Registry, machine_id: str, *, check_interval: float = CHECK_INTERVAL,
                 resync: float = RESYNC, watch_timeout: float = 10.0) -> None:
        store, keys = registry.store, registry.keys
        self.registry = registry
        self.machine_id = machine_id
        self.check_interval = check_interval
        self.resync = resync
        self.jobs = TreeCache(store, keys.tree(Tree.JOB), watch_timeout=watch_timeout)
        self.inbox = TreeCache(store, keys.inbox(machine_id), on_change=self._message, watch_timeout=watch_timeout,
                               sparse=True)
        self.mode = Mode.WATCH
        self.trigger = Trigger()  # wakes the check loop
        self.switches = 0
        self._lock = threading.RLock()
        self._source: tuple[str, str] | None = None  # (leader, term) of the newest message
        self._trusted: tuple[str, str] | None = None  # the source whose messages feed the copy (RELAY)
        self._holder: str | None = None  # the lease holder, as last read
        self._leading = False
        self._entered = float("-inf")  # when RELAY was last entered (a re-read)

    # -- wiring -------------------------------------------------------------------------------------------
    def announce(self) -> None:
        """Create this machine's inbox (``{}``: listening) unless it exists; the relay writes only to inboxes
        that exist. Its last message is kept: a restarted agent learns from it who relays."""
        try:
            self.registry.store.set(self.inbox.prefix, relayed.LISTENING, prev_exist=False)
        except CASConflict:
            pass

    def set_leading(self, leading: bool) -> None:
        """The engine of this machine starts (True) or ends (False) a term. Starting one, the copy follows the
        watch again before this returns: the engine's first pass reads it."""
        with self._lock:
            self._leading = leading
            if leading:
                self._enter_watch()
        if not leading:
            self.trigger.fire()

    def run(self, stop: threading.Event) -> None:
        """The check loop: the lease, every ``check_interval`` s, while a relay is known."""
        run_periodic(self.check, interval=self.check_interval, stop=stop, trigger=self.trigger, name="job-feed")

    # -- deciding -----------------------------------------------------------------------------------------
    def check(self) -> None:
        with self._lock:
            if self._source is None or self._leading:
                self._decide()
                return
        self._read_lease_and_decide(keep_mode=True)

    def _read_lease_and_decide(self, *, keep_mode: bool) -> None:
        """Read the lease (outside the lock), then decide. When it cannot be read: keep the mode (the periodic
        check: a relay that stopped shows as a lease that moved or expired, later) or follow the watch (a reset
        or a new sender, whose messages cannot be trusted until the lease is known)."""
        try:
            lease = self.registry.lease()
        except FleetError as err:
            log.debug("job feed: lease unreadable: %s", err)
            if not keep_mode:
                with self._lock:
                    self._enter_watch()
            return
        with self._lock:
            self._holder = lease.machine_id if lease is not None else None
            self._decide()

    def _decide(self) -> None:
        source = self._source
        relay = not self._leading and source is not None and self._holder == source[0]
        if relay and source is not None:
            stale = time.monotonic() - self._entered >= self.resync
            if self.mode is not Mode.RELAY or self._trusted != source or stale:
                self._enter_relay(source)
        elif self.mode is Mode.RELAY:
            self._enter_watch()

    def _enter_relay(self, source: tuple[str, str]) -> None:
        was = self.mode
        self.jobs.pause()
        self.jobs.reload()  # the copy as of now: messages as old as this re-read are not taken
        self.mode, self._trusted, self._entered = Mode.RELAY, source, time.monotonic()
        if was is not Mode.RELAY:
            self.switches += 1
            log.info("job feed: following the relay of engine %s (term %s)", source[0][:8], source[1])

    def _enter_watch(self) -> None:
        if self.mode is Mode.WATCH:
            return
        self.mode, self._trusted = Mode.WATCH, None
        self.switches += 1
        self.jobs.resume()  # a re-read, then the watch from there
        log.info("job feed: following the job tree's watch (%s)",
                 "this machine leads" if self._leading else "no relay from the lease holder")

    # -- messages -----------------------------------------------------------------------------------------
    def _message(self, event: Event | None) -> None:
        """The inbox's callback (its watch thread): one message, or None after a re-read of the inbox (messages
        may have been missed: in RELAY the tree is re-read)."""
        node = self.inbox.get(self.inbox.prefix) if event is None else event.node
        try:
            message = relayed.decode(node.value) if node is not None and node.value else None
        except RegistryError as err:
            log.warning("job feed: %s", err)
            message = None
        with self._lock:
            if message is None:
                if event is None and self.mode is Mode.RELAY and self._trusted is not None:
                    self._enter_relay(self._trusted)
                return
            new = message.source != self._source
            self._source = message.source
            if not (message.reset or new or event is None):
                if self.mode is Mode.RELAY and message.source == self._trusted:
                    self._apply(message)
                return
            self._trusted = None  # nothing from this sender is taken until the lease says it leads
        self._read_lease_and_decide(keep_mode=False)  # a reset or a new sender: RELAY is entered by a re-read

    def _apply(self, message: relayed.Relayed) -> None:
        keys = self.registry.keys
        dirs: dict[str, list[Node]] = {}
        for name, fields in message.units.items():
            directory = keys.job_dir(name)
            dirs[directory] = [] if fields is None else [Node(f"{directory}/{field}", value, index)
                                                         for field, (value, index) in fields.items()]
        self.jobs.replace(dirs, index=message.index)
