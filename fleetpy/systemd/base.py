"""The ``UnitManager`` port: what the agent needs from systemd, as a Protocol, plus the state record it returns.

Adapter-side contract, no I/O here. Two implementations: ``fleetpy.systemd.dbus.DBusUnitManager`` (real systemd
over D-Bus) and ``fleetpy.systemd.fake.FakeUnitManager`` (in memory, for tests). Every failure is a
``fleetpy.errors.SystemdError`` naming the call and the unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fleetpy.model.unit import UnitFile

ACTIVE_STATES = frozenset({"active", "activating", "reloading"})
"""systemd active states that mean "started" (a restarted agent adopts such a unit as launched)."""


@dataclass(frozen=True, slots=True)
class SystemdState:
    """What systemd says about one unit: LoadState, ActiveState, SubState."""

    load: str
    active: str
    sub: str

    @property
    def found(self) -> bool:
        """False when systemd has no unit file for it (``not-found``): the unit is not really loaded."""
        return self.load != "not-found"

    @property
    def running(self) -> bool:
        return self.active in ACTIVE_STATES


NOT_FOUND = SystemdState("not-found", "inactive", "dead")


class UnitManager(Protocol):
    """systemd as the agent sees it. Names are full unit names (``hello.service``).

    ``load`` writes the unit into the units directory and links it (enables it too when it has ``[Install]``);
    a ``reload`` is needed before systemd sees new or changed content. ``unload`` stops the unit, disables it,
    resets its failed state and removes the file. ``start``/``stop`` queue a job and return at once.
    ``states`` asks about many units in one call; ``units`` lists the local unit files with their hashes.
    """

    def load(self, name: str, unit_file: UnitFile) -> None: ...

    def unload(self, name: str) -> None: ...

    def reload(self) -> None: ...

    def start(self, name: str) -> None: ...

    def stop(self, name: str) -> None: ...

    def states(self, names: Iterable[str]) -> dict[str, SystemdState]: ...

    def units(self) -> Mapping[str, str]: ...
