"""Registry listings decoded into fleet's records: pure functions over the leaves of one tree.

Used by ``Registry`` for its reads and by the watch-maintained caches of the agent and the engine
(``TreeCache``), which decode the same leaves without asking etcd again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fleetpy.errors import RegistryError
from fleetpy.model.records import JobState, MachineState, UnitState
from fleetpy.registry import codec
from fleetpy.registry.keys import Keys
from fleetpy.registry.store import Node


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What ``job/<name>/`` holds, undecoded bodies aside."""

    name: str
    unit_hash: str
    target_state: JobState
    target: str | None
    job_state: str | None


def decode_jobs(keys: Keys, nodes: Iterable[Node]) -> dict[str, JobRecord]:
    """job tree leaves -> name -> JobRecord (jobs without an object are skipped)."""
    parts: dict[str, dict[str, str]] = {}
    base = keys.job_dir("")  # "<prefix>job/": sliced by hand, this loop runs over every job key on every pass
    for node in nodes:
        key = node.key
        if node.value is None or not key.startswith(base):
            continue
        name, slash, field = key[len(base):].partition("/")
        if slash and name and field and "/" not in field:
            parts.setdefault(name, {})[field] = node.value
    out: dict[str, JobRecord] = {}
    for name in sorted(parts):
        record = decode_job(name, parts[name])
        if record is not None:
            out[name] = record
    return out


JOB_FIELDS = frozenset({"object", "target-state", "target", "job-state"})  # the keys of job/<name>/ decoded here


def decode_job(name: str, fields: dict[str, str]) -> JobRecord | None:
    """One job from its fields (``object``, ``target-state``, ``target``, ``job-state`` -> raw value); None
    without a readable object."""
    raw = fields.get("object")
    if raw is None:
        return None
    try:
        _, unit_hash = codec.decode_job_object(raw)
    except RegistryError:
        return None
    try:
        target_state = JobState(fields.get("target-state", "inactive"))
    except ValueError:
        target_state = JobState.INACTIVE
    return JobRecord(name, unit_hash, target_state, fields.get("target") or None, fields.get("job-state") or None)


def decode_bodies(keys: Keys, nodes: Iterable[Node]) -> dict[str, str]:
    """unit tree leaves -> hash -> raw JSON body (decoded lazily: parsing is the expensive part)."""
    out: dict[str, str] = {}
    for node in nodes:
        split = keys.split(node.key)
        if len(split) == 2 and split[0] == "unit" and node.value is not None:
            out[split[1]] = node.value
    return out


def decode_states(keys: Keys, nodes: Iterable[Node]) -> dict[tuple[str, str], UnitState]:
    out: dict[tuple[str, str], UnitState] = {}
    for node in nodes:
        split = keys.split(node.key)
        if len(split) == 3 and split[0] == "states" and node.value is not None:
            try:
                out[(split[1], split[2])] = codec.decode_unit_state(split[1], split[2], node.value)
            except RegistryError:
                continue
    return dict(sorted(out.items()))


def decode_machines(keys: Keys, nodes: Iterable[Node]) -> dict[str, MachineState]:
    objects: dict[str, str] = {}
    dynamic: dict[str, dict[str, str]] = {}
    for node in nodes:
        split = keys.split(node.key)
        if len(split) == 3 and split[0] == "machines" and split[2] == "object" and node.value is not None:
            objects[split[1]] = node.value
        elif len(split) == 4 and split[0] == "machines" and split[2] == "metadata" and node.value is not None:
            dynamic.setdefault(split[1], {})[split[3]] = node.value
    out: dict[str, MachineState] = {}
    for machine_id in sorted(objects):
        try:
            out[machine_id] = codec.decode_machine(objects[machine_id], dynamic.get(machine_id))
        except RegistryError:
            continue
    return out


def legacy_state_machine(raw: str) -> str:
    """The ``machineState.ID`` of a legacy ``state/<unit>`` value ("" when unreadable or absent)."""
    try:
        state = codec.decode_unit_state("", "", raw)
    except RegistryError:
        return ""
    return state.machine.id if state.machine is not None else ""


def current_state(job: JobRecord, states: dict[tuple[str, str], UnitState]) -> JobState:
    """fleet's determineJobState: inactive without a target or a state there; launched if job-state == target."""
    if job.target is None or (job.name, job.target) not in states:
        return JobState.INACTIVE
    return JobState.LAUNCHED if job.job_state == job.target else JobState.LOADED
