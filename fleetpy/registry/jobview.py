"""``JobView``: the job tree's records (``JobRecord``), kept from a ``TreeCache`` incrementally and decoded lazily.

Used by the agent and the engine, which both pass many times while units arrive. A pass first takes the keys that
changed since the previous pass (the cache's change log; after a re-read of the tree, or when the log does not
reach back far enough, every key once) and files their raw values by unit, indexed by target machine and by
``job-state``. Records are decoded (the JSON job object) only when asked for, once per change: the engine asks for
all of them; an agent only for the units scheduled to it, the unscheduled ones (a global unit is never scheduled)
and its own, so its pass costs what concerns it, not the size of the cluster.
"""

from __future__ import annotations

from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JOB_FIELDS, JobRecord, decode_job
from fleetpy.registry.keys import Keys


class JobView:
    def __init__(self, cache: TreeCache, keys: Keys) -> None:
        self.cache = cache
        self.keys = keys
        self._base = keys.job_dir("")  # "<prefix>job/"
        self._version = -1  # the cache's version the raw values reflect
        self._raw: dict[str, dict[str, str]] = {}  # name -> field -> raw value (the fields of JOB_FIELDS)
        self._records: dict[str, JobRecord] = {}  # decoded, for the names not in _dirty
        self._dirty: set[str] = set()  # names whose raw values changed since they were decoded
        self._untargeted: set[str] = set()  # names without a target
        self._by_target: dict[str, set[str]] = {}
        self._by_job_state: dict[str, set[str]] = {}

    # -- reading ------------------------------------------------------------------------------------------
    def records(self) -> dict[str, JobRecord]:
        """Name -> record of every job, as of the cache's current version (the caller must not change the dict)."""
        self.sync()
        for name in sorted(self._dirty):
            self._decode(name)
        self._dirty.clear()
        return self._records

    def select(self, names: set[str]) -> dict[str, JobRecord]:
        """Name -> record of those of ``names`` that are jobs, in name order (as of the last ``sync``)."""
        out = {}
        for name in sorted(names):
            if name in self._dirty:
                self._decode(name)
                self._dirty.discard(name)
            record = self._records.get(name)
            if record is not None:
                out[name] = record
        return out

    def scheduled_to(self, machine_id: str) -> set[str]:
        return set(self._by_target.get(machine_id, ()))

    def unscheduled(self) -> set[str]:
        return set(self._untargeted)

    def with_job_state(self, machine_id: str) -> set[str]:
        """The units whose ``job-state`` (fleet's heartbeat) names ``machine_id``."""
        return set(self._by_job_state.get(machine_id, ()))

    # -- maintenance --------------------------------------------------------------------------------------
    def sync(self) -> None:
        """File the keys changed since the last sync (every key after a re-read of the cache)."""
        version, changed = self.cache.changes_since(self._version)
        if changed is None:
            self._raw, self._records, self._dirty = {}, {}, set()
            self._untargeted, self._by_target, self._by_job_state = set(), {}, {}
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
        fields = self._raw.get(name)
        if fields is None:
            if value is None:
                return
            fields = self._raw[name] = {}
            self._untargeted.add(name)
        old = fields.get(field)
        if value is None:
            fields.pop(field, None)
        else:
            fields[field] = value
        if field == "target":
            self._move(self._by_target, name, old or None, value or None, untargeted=True)
        elif field == "job-state":
            self._move(self._by_job_state, name, old or None, value or None)
        if not fields:
            del self._raw[name]
            self._untargeted.discard(name)
            self._records.pop(name, None)
            self._dirty.discard(name)
        else:
            self._dirty.add(name)

    def _move(self, index: dict[str, set[str]], name: str, old: str | None, new: str | None, *,
              untargeted: bool = False) -> None:
        if old == new:
            return
        if old is not None:
            members = index.get(old)
            if members is not None:
                members.discard(name)
                if not members:
                    del index[old]
        elif untargeted:
            self._untargeted.discard(name)
        if new is not None:
            index.setdefault(new, set()).add(name)
        elif untargeted:
            self._untargeted.add(name)

    def _decode(self, name: str) -> None:
        fields = self._raw.get(name)
        record = None if fields is None else decode_job(name, fields)
        if record is None:
            self._records.pop(name, None)
        else:
            self._records[name] = record
