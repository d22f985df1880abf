"""``Relay``: the leading engine hands each machine the job records that concern it, so agents need not watch ``job/``.

etcd's v2 watch follows a prefix, and fleet keeps every unit under one (``job/<unit>/``): an agent that watches
it reads every unit's every change, most of them another machine's (at 1,000 units on 10 nodes, 4,000 events a
start for each of the 10; bench/PROFILING.md, twelfth round). The leader reads ``job/`` anyway. After each of its
passes it writes to ``fleetpy/inbox/<machine>`` (fleetpy's own key, ``registry/relayed.py``) the current
``job/<unit>/`` keys of the units that changed and concern that machine: scheduled there, beating there
(``job-state``), or global; a unit that leaves a machine (moved, destroyed) goes to it one last time. Only
machines whose agent created its inbox (it listens) get messages, and each gets a reset (re-read the job tree)
first: at the start of a term, when the relay first sees it, and after a write to it failed.

``route`` is pure; ``Relay.send`` reads the leader's watch-maintained copy and writes the messages in one
pipelined batch (``KVStore.set_many``, each machine's messages in order), in the engine's daemon from a thread of
its own (``Sender``): a pass does not wait for etcd to take them (under a 1,000-unit start a batch took 0.15-0.3 s
of waiting for 5-15 ms of CPU, and the pass's own target writes waited behind it).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping

from fleetpy.errors import RegistryError
from fleetpy.registry import relayed
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JOB_FIELDS, JobRecord
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import KVStore

log = logging.getLogger("fleetpy.engine.relay")

CHUNK = 200  # units per message (an inbox write stays well under etcd's request limit)
EVERYONE = "*"  # a global unit concerns every listening machine
Groups = list[list[tuple[str, str]]]  # per machine, its inbox writes in order


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


class Sender:
    """Writes batches of inbox messages from a thread of its own, in the order given: the batches queued while one
    is written go out together as the next (each machine's writes kept in order). A failed batch is reported to
    ``failed`` with the machines it was for."""

    def __init__(self, store: KVStore, failed: Callable[[set[str]], None]) -> None:
        self.store = store
        self.failed = failed
        self._queue: list[tuple[str, Groups]] = []  # (what for, groups) per machine, in order
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def send(self, groups: dict[str, list[tuple[str, str]]]) -> None:
        with self._cond:
            if self._closed:
                return
            self._queue.extend((machine, [writes]) for machine, writes in groups.items())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="engine-relay", daemon=True)
                self._thread.start()
            self._cond.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every batch given has been written (or failed)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                batch, self._queue, self._busy = self._queue, [], True
            merged: dict[str, list[tuple[str, str]]] = {}
            for machine, groups in batch:
                merged.setdefault(machine, []).extend(w for group in groups for w in group)
            try:
                self.store.set_many(list(merged.values()))
            except Exception as err:  # the machines get a reset: nothing more can go wrong here
                log.warning("engine: relaying to %d machines failed: %s (they get a reset next pass)",
                            len(merged), err)
                self.failed(set(merged))
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class Relay:
    """One leadership term's relay. ``send`` after each pass of the leading engine; ``background``: its writes go
    through a ``Sender`` (``close`` at the end of the term), else ``send`` writes them itself."""

    def __init__(self, registry: Registry, machine_id: str, *, term: str | None = None,
                 background: bool = False) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.term = term or secrets.token_hex(4)
        self._lock = threading.Lock()  # _reset, which the sender's thread adds to
        self.sender = Sender(registry.store, self._owe) if background else None
        self._version: int | None = None  # the job copy's version relayed so far (None: nothing yet)
        self._sent: dict[str, frozenset[str]] = {}  # unit -> ``concerned`` when last routed
        self._known: frozenset[str] = frozenset()  # live machines already looked at
        self._listeners: frozenset[str] = frozenset()
        self._reset: set[str] = set()  # listeners owed a reset
        self.messages = 0

    def send(self, jobs: TreeCache, records: Mapping[str, JobRecord], machines: Iterable[str],
             is_global: Callable[[str, JobRecord], bool]) -> int:
        """Relay what changed in ``jobs`` (the leader's copy; ``records`` decoded from it, as new or newer) to the
        live ``machines``; the number of messages written."""
        index = jobs.index  # before the reads: every message holds the store as of its index or later
        if self._version is None:
            version, changed = jobs.version, None
        else:
            version, changed = jobs.changes_since(self._version)
        self._look_at(frozenset(machines) - {self.machine_id})
        if changed is None:  # a new term (or a copy too far behind to say what changed): everyone re-reads
            names = set(records) | set(self._sent)
            self._owe(set(self._listeners))
        else:
            names = {name for key in changed if (name := self._unit_of(key))}
        now = {name: concerned(records.get(name), name in records and is_global(name, records[name]))
               for name in names}
        routes = route(now, self._sent, self._listeners)
        for name, machines_now in now.items():
            if machines_now:
                self._sent[name] = machines_now
            else:
                self._sent.pop(name, None)
        self._version = version
        return self._write(routes, jobs, index)

    def _look_at(self, live: frozenset[str]) -> None:
        """Find which of the machines not seen before listen (one read of the inboxes); they get a reset."""
        fresh = live - self._known
        if fresh:
            inboxes = self.registry.keys.inboxes + "/"
            listing = self.registry.store.list(self.registry.keys.inboxes)
            listening = {n.key[len(inboxes):] for n in listing.nodes if n.key.startswith(inboxes)}
            self._listeners |= fresh & listening
            self._owe(set(fresh & listening))
        self._known = live
        self._listeners &= live

    def _owe(self, machines: set[str]) -> None:
        with self._lock:
            self._reset |= machines

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()

    def _unit_of(self, key: str) -> str:
        parts = self.registry.keys.split(key)
        return parts[1] if len(parts) >= 2 and parts[0] == "job" else ""

    def _write(self, routes: dict[str, list[str]], jobs: TreeCache, index: int) -> int:
        keys = self.registry.keys
        with self._lock:
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
                units = {name: self._fields(jobs, name) for name in names[start:start + CHUNK]}
                message = relayed.Relayed(self.machine_id, self.term, index, units=units)
                group.append((keys.inbox(machine), relayed.encode(message)))
        if not groups:
            return 0
        count = sum(len(group) for group in groups.values())
        if self.sender is not None:
            self.sender.send(groups)
        else:
            try:
                self.registry.store.set_many(list(groups.values()))
            except RegistryError as err:
                log.warning("engine: relaying to %d machines failed: %s (they get a reset next pass)", len(groups),
                            err)
                self._owe(set(groups))
                return 0
        self.messages += count
        return count

    def _fields(self, jobs: TreeCache, name: str) -> relayed.Fields | None:
        keys = self.registry.keys
        out = {}
        for field in sorted(JOB_FIELDS):
            node = jobs.peek(f"{keys.job_dir(name)}/{field}")
            if node is not None and node.value is not None:
                out[field] = (node.value, node.modified_index)
        return out or None
