"""``FakeUnitManager``: a complete in-memory systemd for tests of the agent, with fault injection.

Adapter twin of ``DBusUnitManager``, no I/O. It models what the agent relies on: files are linked by ``load``; a unit
systemd has not loaded yet is loaded on first use (a start or a state query: systemd >= 246 rebuilds its unit-file
cache when a unit directory changed), but new content of a unit it has loaded is seen only after ``reload``;
``start``/``stop`` change the active state at once (as if the job finished instantly). Units can fail (``kill``)
or be refused by systemd (``reject``; like systemd, a service with neither ExecStart= nor ExecStop= is refused),
and any call can be made to raise (``fail``). Every call is recorded
in ``calls`` so tests can count D-Bus round trips. The shared contract scenario (tests/systemd) keeps it honest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence

from fleetpy.errors import SystemdError
from fleetpy.model.unit import UnitFile
from fleetpy.systemd.base import NOT_FOUND, Failures, SystemdState, TransientSystemdError, each


class FakeUnitManager:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.files: dict[str, UnitFile] = {}  # the units directory (linked, and enabled when [Install])
        self.enabled: set[str] = set()
        self.linked: set[str] = set()  # files linked into systemd's search path (a file only in ``files``: not)
        self.seen: dict[str, UnitFile] = {}  # what systemd has loaded (as of the last reload)
        self.active: dict[str, tuple[str, str]] = {}  # name -> (ActiveState, SubState) when not inactive/dead
        self.rejected: set[str] = set()  # names whose content systemd refuses (LoadState bad-setting)
        self.failures: dict[tuple[str, str], tuple[str, bool]] = {}  # (call, name or "") -> (message, transient)
        self.calls: list[tuple[str, str]] = []
        self.reloads = 0

    # -- test controls ------------------------------------------------------------------------------------
    def fail(self, call: str, name: str = "", message: str = "injected failure", *, transient: bool = False
             ) -> None:
        """Make the next ``call`` (``load``, ``start``, ...) for ``name`` raise SystemdError (a
        TransientSystemdError, like a bus timeout, with ``transient``)."""
        with self._lock:
            self.failures[(call, name)] = (message, transient)

    def reject(self, name: str) -> None:
        """systemd will report ``bad-setting`` for this unit and refuse to start it."""
        with self._lock:
            self.rejected.add(name)

    def kill(self, name: str, *, result: str = "failed") -> None:
        """The unit's process died: ``failed`` (Restart=no) or ``inactive``."""
        with self._lock:
            self.active[name] = ("failed", "failed") if result == "failed" else ("inactive", "dead")

    def count(self, call: str, name: str | None = None) -> int:
        with self._lock:
            return sum(1 for c, n in self.calls if c == call and (name is None or n == name))

    # -- internals ----------------------------------------------------------------------------------------
    def _call(self, call: str, name: str = "") -> None:
        self.calls.append((call, name))
        for key in ((call, name), (call, "")):
            failure = self.failures.pop(key, None)
            if failure is not None:
                message, transient = failure
                error = TransientSystemdError if transient else SystemdError
                raise error(f"{call} {name}: {message}".replace("  ", " "))

    def _refused(self, name: str) -> bool:
        """systemd refuses a service with neither ExecStart= nor ExecStop= (LoadState bad-setting)."""
        if name in self.rejected:
            return True
        unit_file = self.seen.get(name)
        return (unit_file is not None and name.endswith(".service")
                and not unit_file.values("Service", "ExecStart") and not unit_file.values("Service", "ExecStop"))

    def _state(self, name: str) -> SystemdState:
        if name not in self.seen and name in self.files and name in self.linked:  # loaded on demand
            self.seen[name] = self.files[name]
        active, sub = self.active.get(name, ("inactive", "dead"))
        if name not in self.seen:
            return SystemdState("not-found", active, sub) if name in self.active else NOT_FOUND
        load = "bad-setting" if self._refused(name) else "loaded"
        return SystemdState(load, active, sub)

    # -- UnitManager --------------------------------------------------------------------------------------
    def load(self, name: str, unit_file: UnitFile) -> None:
        with self._lock:
            self._call("load", name)
            self.files[name] = unit_file
            self.linked.add(name)
            if unit_file.has_section("Install"):
                self.enabled.add(name)

    def unload(self, name: str) -> None:
        with self._lock:
            self._call("unload", name)
            self.active.pop(name, None)  # StopUnit, then ResetFailedUnit
            self.enabled.discard(name)
            self.linked.discard(name)
            self.files.pop(name, None)

    def reload(self) -> None:
        with self._lock:
            self._call("reload")
            self.reloads += 1
            self.seen = {name: f for name, f in self.files.items() if name in self.linked}

    def start(self, name: str) -> None:
        with self._lock:
            self._call("start", name)
            if name not in self.seen and name in self.files and name in self.linked:  # loaded on demand
                self.seen[name] = self.files[name]
            if name not in self.seen:
                raise SystemdError(f"StartUnit {name}: Unit {name} not found.")
            if self._refused(name):
                raise SystemdError(f"StartUnit {name}: Unit {name} has a bad unit file setting.")
            self.active[name] = ("active", "running")

    def stop(self, name: str) -> None:
        with self._lock:
            self._call("stop", name)
            if name not in self.seen and name not in self.active:
                raise SystemdError(f"StopUnit {name}: Unit {name} not loaded.")
            self.active.pop(name, None)

    def states(self, names: Iterable[str]) -> dict[str, SystemdState]:
        with self._lock:
            wanted = list(names)
            if not wanted:
                return {}
            self._call("states")
            return {name: self._state(name) for name in wanted}

    def units(self) -> Mapping[str, str]:
        with self._lock:
            return {name: uf.hash for name, uf in sorted(self.files.items())}

    def load_many(self, units: Mapping[str, UnitFile]) -> Failures:
        return each(units, lambda name: self.load(name, units[name]))

    def unload_many(self, names: Sequence[str]) -> Failures:
        return each(names, self.unload)

    def start_many(self, names: Sequence[str]) -> Failures:
        return each(names, self.start)

    def stop_many(self, names: Sequence[str]) -> Failures:
        return each(names, self.stop)
