"""fleet's etcd key layout (fleet-reference.md section 3): the only module that knows key paths.

Pure. ``Keys(prefix)`` builds every key; ``Keys.parse_*`` split a key back into its parts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_PREFIX = "/_coreos.com/fleet/"


class Tree(enum.StrEnum):
    """The key spaces under the prefix that readers list and watch."""

    JOB = "job"
    UNIT = "unit"
    STATES = "states"
    LEGACY_STATE = "state"  # fleet's legacy state/<unit> copies (nobody reads them; the engine sweeps them)
    MACHINES = "machines"
    LEASE = "lease"
    ENGINE = "engine"
    FLEETPY = "fleetpy"  # fleetpy's own extra keys (scheduling reasons, relay inboxes); fleet never reads them


def normalize_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip("/")
    return prefix if prefix == "/" else prefix + "/"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", normalize_prefix(self.prefix))

    def tree(self, tree: Tree) -> str:
        return f"{self.prefix}{tree.value}"

    # job/<unit>/...
    def job_dir(self, name: str) -> str:
        return f"{self.prefix}job/{name}"

    def job_object(self, name: str) -> str:
        return f"{self.job_dir(name)}/object"

    def target_state(self, name: str) -> str:
        return f"{self.job_dir(name)}/target-state"

    def target(self, name: str) -> str:
        return f"{self.job_dir(name)}/target"

    def job_state(self, name: str) -> str:
        return f"{self.job_dir(name)}/job-state"

    # unit/<sha1>
    def unit_body(self, unit_hash: str) -> str:
        return f"{self.prefix}unit/{unit_hash}"

    # states/<unit>/<machine> and the legacy state/<unit>
    def states_dir(self, name: str) -> str:
        return f"{self.prefix}states/{name}"

    def state(self, name: str, machine_id: str) -> str:
        return f"{self.states_dir(name)}/{machine_id}"

    def legacy_state(self, name: str) -> str:
        return f"{self.prefix}state/{name}"

    # machines/<id>/...
    def machine_dir(self, machine_id: str) -> str:
        return f"{self.prefix}machines/{machine_id}"

    def machine_object(self, machine_id: str) -> str:
        return f"{self.machine_dir(machine_id)}/object"

    def machine_metadata(self, machine_id: str, key: str) -> str:
        return f"{self.machine_dir(machine_id)}/metadata/{key}"

    # singletons
    @property
    def lease(self) -> str:
        return f"{self.prefix}lease/engine-leader"

    @property
    def engine_version(self) -> str:
        return f"{self.prefix}engine/version"

    # fleetpy's own
    def reason(self, name: str) -> str:
        return f"{self.reasons}/{name}"

    @property
    def reasons(self) -> str:
        return f"{self.prefix}fleetpy/reasons"

    def inbox(self, machine_id: str) -> str:
        """Where the leading engine relays the job records that concern one machine (``fleetpy.agent.feed``)."""
        return f"{self.prefix}fleetpy/inbox/{machine_id}"

    @property
    def inboxes(self) -> str:
        return f"{self.prefix}fleetpy/inbox"

    def split(self, key: str) -> tuple[str, ...]:
        """``<prefix>job/x.service/object`` -> ``("job", "x.service", "object")``; () when outside the prefix."""
        if not key.startswith(self.prefix):
            return ()
        parts = key[len(self.prefix) :].split("/")
        return tuple(parts) if "" not in parts else tuple(part for part in parts if part)
