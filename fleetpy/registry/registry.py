"""The registry: fleet's records read from and written to a ``KVStore`` (etcd or the in-memory twin).

Adapter layer. Every read decodes through ``codec`` with keys from ``keys``; every write that must be atomic uses
compare-and-swap. Reads of whole trees are one recursive request each (fleet's ``Units()`` = job tree + unit tree).
Listings are decoded by the pure functions of ``fleetpy.registry.decode``, which watch-maintained caches reuse.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetpy.errors import CASConflict, LeaseLost, NotFound
from fleetpy.model.records import JobState, Lease, MachineState, ScheduledUnit, Unit, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry import codec
from fleetpy.registry.decode import (
    JobRecord,
    current_state,
    decode_bodies,
    decode_jobs,
    decode_machines,
    decode_states,
    legacy_state_machine,
)
from fleetpy.registry.keys import DEFAULT_PREFIX, Keys, Tree
from fleetpy.registry.store import Event, KVStore, Listing, Node

ENGINE_VERSION = 1


class Registry:
    """fleet's registry over a KVStore. Thread-safe as far as the store is."""

    def __init__(self, store: KVStore, prefix: str = DEFAULT_PREFIX) -> None:
        self.store = store
        self.keys = Keys(prefix)
        self._bodies: dict[str, UnitFile] = {}  # hash -> parsed body; bodies are immutable by construction

    # -- reading ----------------------------------------------------------------------------------------
    def listing(self, tree: Tree) -> Listing:
        return self.store.list(self.keys.tree(tree))

    def body(self, unit_hash: str, raw: str | None = None) -> UnitFile | None:
        cached = self._bodies.get(unit_hash)
        if cached is not None:
            return cached
        if raw is None:
            node = self.store.get(self.keys.unit_body(unit_hash))
            if node is None or node.value is None:
                return None
            raw = node.value
        unit_file = codec.decode_unit_body(raw)
        self._bodies[unit_hash] = unit_file
        return unit_file

    def jobs(self) -> dict[str, JobRecord]:
        return decode_jobs(self.keys, self.listing(Tree.JOB).nodes)

    def units(self) -> list[Unit]:
        """Every unit, sorted by name (two requests: the job tree and the unit tree)."""
        return self._units(self.jobs())

    def units_and_schedule(self) -> tuple[list[Unit], list[ScheduledUnit]]:
        """``units()`` and ``schedule()`` from one read of the job tree (list-unit-files needs both)."""
        jobs = self.jobs()
        return self._units(jobs), self._schedule(jobs) if jobs else []

    def _units(self, jobs: dict[str, JobRecord]) -> list[Unit]:
        bodies = decode_bodies(self.keys, self.listing(Tree.UNIT).nodes) if jobs else {}
        out = []
        for name, job in jobs.items():
            unit_file = self.body(job.unit_hash, bodies.get(job.unit_hash))
            if unit_file is not None:
                out.append(Unit(name, unit_file, job.target_state))
        return out

    def unit(self, name: str) -> Unit | None:
        """One unit, reading only its own keys."""
        listing = self.store.list(self.keys.job_dir(name))
        job = decode_jobs(self.keys, listing.nodes).get(name)
        if job is None:
            return None
        unit_file = self.body(job.unit_hash)
        return Unit(name, unit_file, job.target_state) if unit_file is not None else None

    def job(self, name: str) -> JobRecord | None:
        return decode_jobs(self.keys, self.store.list(self.keys.job_dir(name)).nodes).get(name)

    def schedule(self) -> list[ScheduledUnit]:
        return self._schedule(self.jobs())

    def _schedule(self, jobs: dict[str, JobRecord]) -> list[ScheduledUnit]:
        states = self.unit_states_map()
        return [ScheduledUnit(j.name, j.target, current_state(j, states)) for j in jobs.values()]

    def scheduled_unit(self, name: str) -> ScheduledUnit | None:
        job = self.job(name)
        if job is None:
            return None
        states = {}
        if job.target:
            node = self.store.get(self.keys.state(name, job.target))
            if node is not None and node.value is not None:
                states[(name, job.target)] = codec.decode_unit_state(name, job.target, node.value)
        return ScheduledUnit(name, job.target, current_state(job, states))

    def unit_states_map(self) -> dict[tuple[str, str], UnitState]:
        return decode_states(self.keys, self.listing(Tree.STATES).nodes)

    def unit_states(self, *, machine_id: str | None = None, unit_name: str | None = None) -> list[UnitState]:
        """States sorted by unit name then machine ID; ``unit_name`` reads only that unit's directory."""
        if unit_name is not None:
            nodes = self.store.list(self.keys.states_dir(unit_name)).nodes
        else:
            nodes = self.listing(Tree.STATES).nodes
        states = decode_states(self.keys, nodes).values()
        return [s for s in states if machine_id is None or s.machine_id == machine_id]

    def machines(self) -> list[MachineState]:
        return list(decode_machines(self.keys, self.listing(Tree.MACHINES).nodes).values())

    def machine(self, machine_id: str) -> MachineState | None:
        nodes = self.store.list(self.keys.machine_dir(machine_id)).nodes
        return decode_machines(self.keys, nodes).get(machine_id)

    def reasons(self) -> dict[str, str]:
        """fleetpy's own scheduling reasons (unit -> why it is not scheduled), empty when none."""
        out = {}
        for node in self.store.list(self.keys.reasons).nodes:  # not fleetpy/inbox: the relay's messages
            split = self.keys.split(node.key)
            if len(split) == 3 and split[1] == "reasons" and node.value is not None:
                out[split[2]] = node.value
        return out

    # -- unit lifecycle (client side) ---------------------------------------------------------------------
    def create_unit(self, unit: Unit) -> None:
        """Store the body (content-addressed, never overwritten; not again once this registry wrote or read it:
        300 instances of one template write it once), then the job object and target state."""
        self._store_body(unit)
        for key, value in self._job_writes(unit):
            self.store.set(key, value)

    def create_units(self, units: Sequence[Unit]) -> None:
        """``create_unit`` for many: the new bodies first, then each unit's object and target state (in that
        order) in one pipelined ``set_many``."""
        for unit in {u.hash: u for u in units}.values():
            self._store_body(unit)
        self.store.set_many([self._job_writes(unit) for unit in units])

    def _store_body(self, unit: Unit) -> None:
        if unit.hash in self._bodies:
            return
        try:
            self.store.set(self.keys.unit_body(unit.hash), codec.encode_unit_body(unit.unit_file), prev_exist=False)
        except CASConflict:
            pass
        self._bodies[unit.hash] = unit.unit_file

    def _job_writes(self, unit: Unit) -> list[tuple[str, str]]:
        """A new job's keys and values, in the order they are written: its object, then its target state."""
        return [(self.keys.job_object(unit.name), codec.encode_job_object(unit.name, unit.hash)),
                (self.keys.target_state(unit.name), unit.target_state.value)]

    def destroy_unit(self, name: str) -> bool:
        """Delete ``job/<name>``; False when there was nothing to delete."""
        try:
            self.store.delete(self.keys.job_dir(name), recursive=True)
        except NotFound:
            return False
        self.clear_reason(name)
        return True

    def set_target_state(self, name: str, state: JobState) -> None:
        self.store.set(self.keys.target_state(name), state.value)

    def set_target_states(self, names: Sequence[str], state: JobState) -> None:
        self.store.set_many([[(self.keys.target_state(name), state.value)] for name in names])

    # -- engine side ------------------------------------------------------------------------------------
    def schedule_unit(self, name: str, machine_id: str) -> None:
        """Set ``job/<name>/target`` only if unset (CASConflict otherwise)."""
        self.store.set(self.keys.target(name), machine_id, prev_exist=False)

    def schedule_units(self, targets: Sequence[tuple[str, str]]) -> Sequence[bool]:
        """``schedule_unit`` of many ``(name, machine_id)`` at once: per unit, True when its target was set,
        False when it already had one."""
        return self.store.create_many([(self.keys.target(name), machine_id) for name, machine_id in targets])

    def unschedule_unit(self, name: str, machine_id: str) -> bool:
        """Delete the target only if it still names ``machine_id``; False when it did not (missing or moved)."""
        try:
            self.store.delete(self.keys.target(name), prev_value=machine_id)
        except (NotFound, CASConflict):
            return False
        return True

    def set_reason(self, name: str, reason: str) -> None:
        self.store.set(self.keys.reason(name), reason)

    def clear_reason(self, name: str) -> None:
        try:
            self.store.delete(self.keys.reason(name))
        except NotFound:
            pass

    def engine_version(self) -> int:
        return _version_of(self.store.get(self.keys.engine_version))

    def ensure_engine_version(self, ours: int = ENGINE_VERSION) -> bool:
        """Bump the cluster's engine version to ours if lower (CAS); False when the cluster is newer. One read
        when nothing changes (it runs on every engine tick of every machine)."""
        node = self.store.get(self.keys.engine_version)
        current = _version_of(node)
        if current > ours:
            return False
        if current < ours:
            try:
                if node is None:
                    self.store.set(self.keys.engine_version, str(ours), prev_exist=False)
                else:
                    self.store.set(self.keys.engine_version, str(ours), prev_index=node.modified_index)
            except CASConflict:
                return self.engine_version() <= ours
        return True

    def lease(self) -> Lease | None:
        node = self.store.get(self.keys.lease)
        if node is None or node.value is None:
            return None
        return codec.decode_lease(node.value, index=node.modified_index, ttl=float(node.ttl or 0))

    def acquire_lease(self, machine_id: str, version: int, ttl: int) -> Lease | None:
        """Take the lease if free; None when someone holds it."""
        try:
            node = self.store.set(self.keys.lease, codec.encode_lease(machine_id, version), ttl=ttl,
                                  prev_exist=False)
        except CASConflict:
            return None
        return Lease(machine_id, version, node.modified_index, float(ttl))

    def renew_lease(self, lease: Lease, ttl: int) -> Lease:
        """Extend our lease (CAS on its index); LeaseLost if it changed hands or expired."""
        try:
            node = self.store.set(self.keys.lease, codec.encode_lease(lease.machine_id, lease.version), ttl=ttl,
                                  prev_index=lease.index)
        except (CASConflict, NotFound) as err:
            raise LeaseLost(f"engine lease of {lease.machine_id} lost") from err
        return Lease(lease.machine_id, lease.version, node.modified_index, float(ttl))

    def steal_lease(self, lease: Lease, machine_id: str, version: int, ttl: int) -> Lease | None:
        """Take over an older-version holder's lease (CAS on its index); None if it changed meanwhile."""
        try:
            node = self.store.set(self.keys.lease, codec.encode_lease(machine_id, version), ttl=ttl,
                                  prev_index=lease.index)
        except (CASConflict, NotFound):
            return None
        return Lease(machine_id, version, node.modified_index, float(ttl))

    def release_lease(self, lease: Lease) -> None:
        try:
            self.store.delete(self.keys.lease, prev_index=lease.index)
        except (CASConflict, NotFound):
            pass

    # -- agent side -------------------------------------------------------------------------------------
    def create_machine_state(self, machine: MachineState, ttl: int) -> None:
        """Register a machine; CASConflict when the ID is already registered (fleet: duplicate machine-id)."""
        self.store.set(self.keys.machine_object(machine.id), codec.encode_machine(machine), ttl=ttl,
                       prev_exist=False)

    def set_machine_state(self, machine: MachineState, ttl: int) -> bool:
        """Write the machine object; True when it had to be created (it had expired or was never there)."""
        try:
            self.store.set(self.keys.machine_object(machine.id), codec.encode_machine(machine), ttl=ttl,
                           prev_exist=True)
        except NotFound:
            self.store.set(self.keys.machine_object(machine.id), codec.encode_machine(machine), ttl=ttl,
                           prev_exist=False)
            return True
        return False

    def refresh_machine_state(self, machine_id: str, ttl: int) -> None:
        self.store.refresh(self.keys.machine_object(machine_id), ttl)

    def remove_machine_state(self, machine_id: str) -> None:
        try:
            self.store.delete(self.keys.machine_object(machine_id))
        except NotFound:
            pass

    def set_machine_metadata(self, machine_id: str, key: str, value: str) -> None:
        """Dynamic metadata (the API's PATCH); ``""`` is a tombstone that deletes the key."""
        self.store.set(self.keys.machine_metadata(machine_id, key), value)

    def save_unit_state(self, state: UnitState, ttl: int | None = None) -> None:
        """``states/<unit>/<machine>`` then the legacy ``state/<unit>``; fleetpyd writes them without a TTL."""
        if not state.unit_hash or not state.machine_id:
            return
        raw = codec.encode_unit_state(state)
        self.store.set(self.keys.state(state.name, state.machine_id), raw, ttl=ttl)
        self.store.set(self.keys.legacy_state(state.name), raw, ttl=ttl)

    def remove_unit_state(self, name: str, machine_id: str) -> None:
        """Delete ``states/<unit>/<machine>``, and the legacy ``state/<unit>`` only while it is this machine's
        (compare-and-delete: another machine may have written it since; without TTLs nothing would restore it)."""
        try:
            self.store.delete(self.keys.state(name, machine_id))
        except NotFound:
            pass
        node = self.store.get(self.keys.legacy_state(name))
        if node is None or node.value is None or legacy_state_machine(node.value) != machine_id:
            return
        try:
            self.store.delete(node.key, prev_index=node.modified_index)
        except (NotFound, CASConflict):
            pass

    def unit_heartbeat(self, name: str, machine_id: str, ttl: int | None = None) -> None:
        self.store.set(self.keys.job_state(name), machine_id, ttl=ttl)

    def clear_unit_heartbeat(self, name: str, machine_id: str | None = None) -> None:
        """Delete ``job/<unit>/job-state``; with ``machine_id``, only while it names that machine."""
        try:
            self.store.delete(self.keys.job_state(name), prev_value=machine_id)
        except (NotFound, CASConflict):
            pass

    # -- watching ---------------------------------------------------------------------------------------
    def watch(self, tree: Tree, *, after_index: int, timeout: float) -> Event | None:
        return self.store.watch(self.keys.tree(tree), after_index=after_index, timeout=timeout)


def _version_of(node: Node | None) -> int:
    """``engine/version``'s value as an int (0 when absent or unreadable, as fleet)."""
    try:
        return int(node.value) if node is not None and node.value else 0
    except ValueError:
        return 0
