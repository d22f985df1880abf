"""``JobView``: the job tree's records (``JobRecord``), decoded incrementally from a ``TreeCache``.

Used by the agent and the engine, which both pass many times while units arrive: a pass decodes the units whose
keys changed since the previous pass (the cache's change log), not every unit of the tree; after a re-read of
the tree, or when the log does not reach back far enough, it decodes everything once.
"""

from __future__ import annotations

from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JobRecord, decode_jobs
from fleetpy.registry.keys import Keys


class JobView:
    def __init__(self, cache: TreeCache, keys: Keys) -> None:
        self.cache = cache
        self.keys = keys
        self._records: dict[str, JobRecord] = {}
        self._version = -1  # the cache's version _records reflects

    def records(self) -> dict[str, JobRecord]:
        """Name -> record, as of the cache's current version (the caller must not change the dict)."""
        version, changed = self.cache.changes_since(self._version)
        keys = self.keys
        if changed is None:
            self._records = decode_jobs(keys, self.cache.nodes())
        else:
            for name in sorted({parts[1] for parts in map(keys.split, changed) if len(parts) >= 2}):
                nodes = [node for key in (keys.job_object(name), keys.target_state(name), keys.target(name),
                                          keys.job_state(name)) if (node := self.cache.get(key)) is not None]
                record = decode_jobs(keys, nodes).get(name)
                if record is None:
                    self._records.pop(name, None)
                else:
                    self._records[name] = record
        self._version = version
        return self._records
