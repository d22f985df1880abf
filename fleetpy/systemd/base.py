"""The ``UnitManager`` port: what the agent needs from systemd, as a Protocol, plus the state record it returns.

Adapter-side contract, no I/O here. Two implementations: ``fleetpy.systemd.dbus.DBusUnitManager`` (real systemd
over D-Bus) and ``fleetpy.systemd.fake.FakeUnitManager`` (in memory, for tests). Every failure is a
``fleetpy.errors.SystemdError`` naming the call and the unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from fleetpy.errors import SystemdError
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


class TransientSystemdError(SystemdError):
    """The call did not reach a verdict (bus limits, timeout, disconnection): the same call may well succeed
    if retried, unlike a refusal by systemd (bad unit file, no such unit...)."""

Failures = dict[str, SystemdError]
"""What a batch call returns: the units it failed for, each with its error (empty: all done)."""


def each(names: Iterable[str], fn: Callable[[str], None]) -> Failures:
    """Run ``fn`` for every name, collecting the SystemdErrors instead of stopping at the first."""
    failures: Failures = {}
    for name in names:
        try:
            fn(name)
        except SystemdError as err:
            failures[name] = err
    return failures


def raise_first(failures: Failures) -> None:
    for err in failures.values():
        raise err


class UnitManager(Protocol):
    """systemd as the agent sees it. Names are full unit names (``hello.service``).

    ``load`` writes the unit into the units directory and links it (enables it too when it has ``[Install]``);
    a ``reload`` is needed before systemd sees new or changed content. ``unload`` stops the unit, disables it,
    resets its failed state and removes the file. ``start``/``stop`` queue a job and return at once.
    ``states`` asks about many units in one call; ``units`` lists the local unit files with their hashes.
    The ``*_many`` forms do the same for many units at once (the D-Bus driver pipelines the calls) and return
    the failures instead of raising: the units are independent, one failing does not stop the others.
    """

    def load(self, name: str, unit_file: UnitFile) -> None: ...

    def unload(self, name: str) -> None: ...

    def reload(self) -> None: ...

    def start(self, name: str) -> None: ...

    def stop(self, name: str) -> None: ...

    def load_many(self, units: Mapping[str, UnitFile]) -> Failures: ...

    def unload_many(self, names: Sequence[str]) -> Failures: ...

    def start_many(self, names: Sequence[str]) -> Failures: ...

    def stop_many(self, names: Sequence[str]) -> Failures: ...

    def states(self, names: Iterable[str]) -> dict[str, SystemdState]: ...

    def units(self) -> Mapping[str, str]: ...
