"""``JobView``: the job tree's records (``JobRecord``), kept from a ``TreeCache`` incrementally and decoded lazily.

Used by the agent and the engine, which both pass many times while units arrive. A pass first takes the keys that
changed since the previous pass (the cache's change log; after a re-read of the tree, or when the log does not
reach back far enough, every key once). Records are decoded (the JSON job object, the fields read from the cache)
only when asked for, once per change. The engine asks for all of them. An agent's view (``machine`` given) also
keeps which units are scheduled to its machine, which are unscheduled (a global unit never is) and whose
``job-state`` names it, and decodes only those: its pass costs what concerns the machine, and it holds no copy
of the rest of the cluster (a simulation runs 1,000 agents in 2 cores and a few processes).
"""

from __future__ import annotations

from collections.abc import Callable

from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JOB_FIELDS, JobRecord, decode_job
from fleetpy.registry.keys import Keys


class JobView:
    def __init__(self, cache: TreeCache, keys: Keys, machine: str | None = None,
                 may_be_global: Callable[[str], bool] | None = None) -> None:
        """``machine``: the agent's machine id, for ``mine`` (None: the engine's view, ``records`` only).
        ``may_be_global`` (a raw job object -> False when its unit is known not to be global): the unscheduled
        units it rules out are not the machine's concern (``refilter`` applies it again once bodies are read)."""
        self.cache = cache
        self.keys = keys
        self.machine = machine
        self.may_be_global = may_be_global
        self._base = keys.job_dir("")  # "<prefix>job/"
        self._version = -1  # the cache's version the view reflects
        self._records: dict[str, JobRecord] = {}  # decoded, for the names not in _dirty
        self._dirty: set[str] = set()  # names changed since decoded (the engine's view: every name changed)
        self._mine: set[str] = set()  # target is self.machine
        self._untargeted: set[str] = set()  # an object and no target
        self._beats: set[str] = set()  # job-state is self.machine

    # -- reading ------------------------------------------------------------------------------------------
    def records(self) -> dict[str, JobRecord]:
        """Name -> record of every job, as of the cache's current version (the engine's view; the caller must
        not change the dict)."""
        self.sync()
        for name in sorted(self._dirty):
            self._decode(name)
        self._dirty.clear()
        return self._records

    def mine(self) -> dict[str, JobRecord]:
        """Name -> record, in name order, of the units scheduled to this view's machine, the unscheduled ones and
        those whose ``job-state`` names it (as of the last ``sync``)."""
        names = self._mine | self._untargeted | self._beats
        for name in [n for n in self._records if n not in names]:
            del self._records[name]  # no longer concerns this machine
            self._dirty.discard(name)
        return self.select(names)

    def select(self, names: set[str]) -> dict[str, JobRecord]:
        """Name -> record of those of ``names`` that are jobs, in name order (as of the last ``sync``)."""
        out = {}
        for name in sorted(names):
            if name in self._dirty or name not in self._records:
                self._decode(name)
                self._dirty.discard(name)
            record = self._records.get(name)
            if record is not None:
                out[name] = record
        return out

    # -- maintenance --------------------------------------------------------------------------------------
    def refilter(self) -> None:
        """Drop the unscheduled units ``may_be_global`` now rules out. During a burst hundreds of units wait for
        the engine; each agent pass decoded and checked every one of them again."""
        if self.may_be_global is None:
            return
        for name in [n for n in self._untargeted if not self._global_candidate(n)]:
            self._untargeted.discard(name)

    def _global_candidate(self, name: str) -> bool:
        node = self.cache.peek(self.keys.job_object(name))
        if node is None or node.value is None:
            return False
        return self.may_be_global is None or self.may_be_global(node.value)

    def sync(self) -> None:
        """Take the keys changed since the last sync (every key after a re-read of the cache)."""
        version, changed = self.cache.changes_since(self._version)
        if changed is None:
            self._records, self._dirty = {}, set()
            self._mine, self._untargeted, self._beats = set(), set(), set()
            for leaf in self.cache.nodes():
                if leaf.value is not None:
                    self._file(leaf.key, leaf.value)
        else:
            for key, node in changed.items():
                self._file(key, None if node is None else node.value)
        self._version = version

    def _file(self, key: str, value: str | None) -> None:
        if not key.startswith(self._base):
            return
        name, slash, field = key[len(self._base):].partition("/")
        if not (slash and name and field in JOB_FIELDS):
            return
        machine = self.machine
        if machine is None:
            self._dirty.add(name)
            return
        if name in self._records:
            self._dirty.add(name)
        if field == "target":
            _mark(self._mine, name, value == machine)
            _mark(self._untargeted, name, not value and self._global_candidate(name))
        elif field == "object":
            _mark(self._untargeted, name, value is not None and self.cache.peek(self.keys.target(name)) is None
                  and (self.may_be_global is None or self.may_be_global(value)))
        elif field == "job-state":
            _mark(self._beats, name, value == machine)

    def _decode(self, name: str) -> None:
        keys, cache = self.keys, self.cache
        fields = {}
        for field, key in (("object", keys.job_object(name)), ("target-state", keys.target_state(name)),
                           ("target", keys.target(name)), ("job-state", keys.job_state(name))):
            node = cache.peek(key)
            if node is not None and node.value is not None:
                fields[field] = node.value
        record = decode_job(name, fields)
        if record is None:
            self._records.pop(name, None)
        else:
            self._records[name] = record


def _mark(members: set[str], name: str, member: bool) -> None:
    if member:
        members.add(name)
    else:
        members.discard(name)
