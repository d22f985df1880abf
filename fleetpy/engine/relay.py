"""``Relay``: the leading engine hands each machine the job records that concern it, so agents need not watch ``job/``.

etcd's v2 watch follows a prefix, and fleet keeps every unit under one (``job/<unit>/``): an agent that watches
it reads every unit's every change, most of them another machine's (at 1,000 units on 10 nodes, 4,000 events a
start for each of the 10; bench/PROFILING.md, twelfth round). The leader reads ``job/`` anyway. After every change
of its copy it writes to ``fleetpy/inbox/<machine>`` (fleetpy's own key, ``registry/relayed.py``) the current
``job/<unit>/`` keys of the units that changed and concern that machine: scheduled there, beating there
(``job-state``), or global; a unit that leaves a machine (moved, destroyed) goes to it one last time. Only
machines whose agent created its inbox (it listens) get messages, and each gets a reset (re-read the job tree)
first: at the start of a term, when the relay first sees it, and after a write to it failed.

``route`` is pure; ``Relay.send`` reads the leader's watch-maintained copy and writes the messages in one
pipelined batch (``KVStore.set_many``, each machine's messages in order). The leading engine runs it in a loop of
its own (``Relay.run``), woken by every change of the copy: the scheduling passes neither wait for etcd to take
the messages (under a 1,000-unit start a batch took 0.15-0.3 s of waiting for 5-15 ms of CPU) nor run for the
``job-state`` heartbeats that only the relay passes on (10,000 of them in the 1,000-machine simulation).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping

from fleetpy.errors import RegistryError
from fleetpy.loop import Trigger, run_periodic
from fleetpy.registry import relayed
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JOB_FIELDS, JobRecord, decode_job
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Node

log = logging.getLogger("fleetpy.engine.relay")

CHUNK = 200  # units per message (an inbox write stays well under etcd's request limit)
EVERYONE = "*"  # a global unit concerns every listening machine


def concerned(record: JobRecord | None, is_global: bool) -> frozenset[str]:
    """The machines a unit concerns: its target and the machine its ``job-state`` names, or ``EVERYONE``."""
    if record is None:
        return frozenset()
    if is_global:
        return frozenset({EVERYONE})
    return frozenset(m for m in (record.target, record.job_state) if m)


def route(changed: Mapping[str, frozenset[str]], sent: Mapping[str, frozenset[str]],
          listeners: frozenset[str]) -> dict[str, list[str]]:
    """Listening machine -> the changed units (in name order) to send it: those that concern it now
    (``changed``: name -> ``concerned``) and those that did when last sent (``sent``)."""
    out: dict[str, list[str]] = {}
    for name in sorted(changed):
        machines = changed[name] | sent.get(name, frozenset())
        targets = listeners if EVERYONE in machines else machines & listeners
        for machine in sorted(targets):
            out.setdefault(machine, []).append(name)
    return out


class Relay:
    """One leadership term's relay: ``send`` relays what changed since the last call; ``run`` calls it whenever
    ``trigger`` fires (every change of the job copy or of the machines), until its ``stop``."""

    def __init__(self, registry: Registry, machine_id: str, *, term: str | None = None) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.term = term or secrets.token_hex(4)
        self.trigger = Trigger()
        self._version: int | None = None  # the job copy's version relayed so far (None: nothing yet)
        self._sent: dict[str, frozenset[str]] = {}  # unit -> ``concerned`` when last routed
        self._known: frozenset[str] = frozenset()  # live machines already looked at
        self._listeners: frozenset[str] = frozenset()
        self._reset: set[str] = set()  # listeners owed a reset
        self.messages = 0

    def run(self, stop: threading.Event, *, jobs: TreeCache, machines: Callable[[], Iterable[str]],
            is_global: Callable[[str, JobRecord], bool], interval: float, min_gap: float = 0.1,
            idle_gap: float = 0.02) -> None:
        """``send`` on every ``trigger`` and every ``interval`` s (resets owed after a failed write). After a call
        that wrote messages the next waits ``min_gap`` s, so that a burst's changes go together (0.01 s made ~10%
        more CPU in fleetpyd for a 1,000-unit start and no sooner start); after one that wrote nothing only
        ``idle_gap`` s: a unit's first change (the CLI's) concerns no machine yet, and its target, a few ms later,
        went out only after the whole gap (one unit's start took 0.1 s longer). With no gap at all after those,
        the CLI's writes of a 1,000-unit start woke back-to-back calls: 0.1 CPU-s more in fleetpyd. (The two CPU
        figures come from lab A/B sets that may have run the same fleetpyd on both sides, bench/PROFILING.md,
        fifteenth round; the latency gain is the full runs': 0.163 s p50 before, 0.060-0.098 s after.)"""
        def relay() -> None:
            gap = min_gap if self.send(jobs, machines(), is_global) else idle_gap
            if gap > 0:
                stop.wait(gap)
        run_periodic(relay, interval=interval, stop=stop, trigger=self.trigger, name="engine-relay")

    def send(self, jobs: TreeCache, machines: Iterable[str], is_global: Callable[[str, JobRecord], bool]) -> int:
        """Relay what changed in ``jobs`` (the leader's copy) to the live ``machines``; the number of messages
        written."""
        index = jobs.index  # before the reads: every message holds the store as of its index or later
        if self._version is None:
            version, changed = jobs.version, None
        else:
            version, changed = jobs.changes_since(self._version)
        self._look_at(frozenset(machines) - {self.machine_id})
        if changed is None:  # a new term (or a copy too far behind to say what changed): everyone re-reads
            names = {name for node in jobs.nodes() if (name := self._unit_of(node.key))} | set(self._sent)
            self._reset |= self._listeners
        else:
            names = {name for key in changed if (name := self._unit_of(key))}
        now = {}
        read = {name: self._read(jobs, name) for name in sorted(names)}
        for name, nodes in read.items():
            record = decode_job(name, {field: node.value for field, node in nodes.items() if node.value is not None})
            now[name] = concerned(record, record is not None and is_global(name, record))
        routes = route(now, self._sent, self._listeners)
        for name, machines_now in now.items():
            if machines_now:
                self._sent[name] = machines_now
            else:
                self._sent.pop(name, None)
        self._version = version
        return self._write(routes, read, index)

    def _look_at(self, live: frozenset[str]) -> None:
        """Find which of the machines not seen before listen (one read of the inboxes); they get a reset."""
        fresh = live - self._known
        if fresh:
            inboxes = self.registry.keys.inboxes + "/"
            listing = self.registry.store.list(self.registry.keys.inboxes)
            listening = {n.key[len(inboxes):] for n in listing.nodes if n.key.startswith(inboxes)}
            self._listeners |= fresh & listening
            self._reset |= fresh & listening
        self._known = live
        self._listeners &= live

    def _unit_of(self, key: str) -> str:
        parts = self.registry.keys.split(key)
        return parts[1] if len(parts) >= 2 and parts[0] == "job" else ""

    def _write(self, routes: dict[str, list[str]], read: Mapping[str, dict[str, Node]], index: int) -> int:
        keys = self.registry.keys
        resets, self._reset = self._reset & self._listeners, set()
        groups: dict[str, list[tuple[str, str]]] = {}
        for machine in sorted(resets):
            message = relayed.Relayed(self.machine_id, self.term, index, reset=True)
            groups[machine] = [(keys.inbox(machine), relayed.encode(message))]
        for machine, names in sorted(routes.items()):
            if machine in resets:
                continue  # it re-reads everything
            group = groups[machine] = []
            for start in range(0, len(names), CHUNK):
                units = {name: {f: (n.value or "", n.modified_index) for f, n in read[name].items()} or None
                         for name in names[start:start + CHUNK]}
                message = relayed.Relayed(self.machine_id, self.term, index, units=units)
                group.append((keys.inbox(machine), relayed.encode(message)))
        if not groups:
            return 0
        try:
            self.registry.store.set_many(list(groups.values()))
        except RegistryError as err:
            log.warning("engine: relaying to %d machines failed: %s (they get a reset)", len(groups), err)
            self._reset |= set(groups)
            return 0
        count = sum(len(group) for group in groups.values())
        self.messages += count
        return count

    def _read(self, jobs: TreeCache, name: str) -> dict[str, Node]:
        """The unit's job keys in the copy (field -> node), as they are now."""
        directory = self.registry.keys.job_dir(name)
        out = {}
        for field in sorted(JOB_FIELDS):
            node = jobs.peek(f"{directory}/{field}")
            if node is not None and node.value is not None:
                out[field] = node
        return out
