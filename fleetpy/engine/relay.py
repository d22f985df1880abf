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
pipelined batch (``KVStore.set_many``, each machine's messages in order).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Mapping

from fleetpy.errors import RegistryError
from fleetpy.registry import relayed
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JOB_FIELDS, JobRecord
from fleetpy.registry.registry import Registry

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
    """One leadership term's relay. ``send`` after each pass of the leading engine."""

    def __init__(self, registry: Registry, machine_id: str, *, term: str | None = None) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.term = term or secrets.token_hex(4)
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
            self._reset |= self._listeners
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
            self._reset |= fresh & listening
        self._known = live
        self._listeners &= live
        self._reset &= self._listeners

    def _unit_of(self, key: str) -> str:
        parts = self.registry.keys.split(key)
        return parts[1] if len(parts) >= 2 and parts[0] == "job" else ""

    def _write(self, routes: dict[str, list[str]], jobs: TreeCache, index: int) -> int:
        keys = self.registry.keys
        groups: list[list[tuple[str, str]]] = []
        resets = sorted(self._reset)
        for machine in resets:
            message = relayed.Relayed(self.machine_id, self.term, index, reset=True)
            groups.append([(keys.inbox(machine), relayed.encode(message))])
        for machine, names in sorted(routes.items()):
            if machine in self._reset:
                continue  # it re-reads everything
            group = []
            for start in range(0, len(names), CHUNK):
                units = {name: self._fields(jobs, name) for name in names[start:start + CHUNK]}
                message = relayed.Relayed(self.machine_id, self.term, index, units=units)
                group.append((keys.inbox(machine), relayed.encode(message)))
            groups.append(group)
        if not groups:
            return 0
        try:
            self.registry.store.set_many(groups)
        except RegistryError as err:
            owed = set(resets) | set(routes)
            log.warning("engine: relaying to %d machines failed: %s (they get a reset next pass)", len(owed), err)
            self._reset |= owed
            return 0
        self._reset.clear()
        count = sum(len(group) for group in groups)
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
