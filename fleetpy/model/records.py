"""The registry's records: one frozen dataclass per etcd key space, and the StrEnum states.

Pure. JSON codecs live next to the registry (``fleetpy.registry.codec``); these records know nothing of etcd.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from fleetpy.model.job import Requirements
from fleetpy.model.unit import UnitFile


class JobState(enum.StrEnum):
    """fleet's desired/current job states."""

    INACTIVE = "inactive"
    LOADED = "loaded"
    LAUNCHED = "launched"


def _frozen(d: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted((d or {}).items())))


@dataclass(frozen=True, slots=True)
class Unit:
    """``job/<name>/object`` + ``job/<name>/target-state`` + the body in ``unit/<hash>``."""

    name: str
    unit_file: UnitFile
    target_state: JobState = JobState.INACTIVE

    @property
    def hash(self) -> str:
        return self.unit_file.hash

    @property
    def requirements(self) -> Requirements:
        return Requirements.of(self.unit_file, self.name)

    @property
    def is_global(self) -> bool:
        return self.requirements.is_global


@dataclass(frozen=True, slots=True)
class ScheduledUnit:
    """A unit as the scheduler sees it: ``job/<name>/target`` plus the derived current state."""

    name: str
    target_machine: str | None  # None: unscheduled
    current_state: JobState = JobState.INACTIVE


@dataclass(frozen=True, slots=True)
class MachineState:
    """``machines/<id>/object`` merged with ``machines/<id>/metadata/<k>`` (dynamic values win, "" deletes)."""

    id: str
    public_ip: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    version: str = ""
    disable_engine: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def legend(self, *, full: bool = False) -> str:
        """``abcd1234.../10.0.0.1`` as fleetctl prints a machine (the full ID with ``--full``)."""
        ident = self.id if full else f"{self.short_id}..."
        return f"{ident}/{self.public_ip}" if self.public_ip else ident

    def matches_id(self, wanted: str) -> bool:
        """fleet's MatchID: the full ID or the 8-character short ID."""
        return wanted == self.id or (len(wanted) == 8 and wanted == self.short_id)


@dataclass(frozen=True, slots=True)
class UnitState:
    """``states/<unit>/<machine>``: what systemd on that machine says about the unit."""

    name: str
    machine_id: str
    load_state: str
    active_state: str
    sub_state: str
    unit_hash: str
    machine: MachineState | None = None  # as embedded in the state JSON (fleet writes ID only, mostly)


@dataclass(frozen=True, slots=True)
class Lease:
    """``lease/engine-leader``: who leads the engine, with the etcd index used for CAS renewals."""

    machine_id: str
    version: int
    index: int
    ttl: float
