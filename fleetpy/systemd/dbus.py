"""``DBusUnitManager``: the ``UnitManager`` port over systemd's D-Bus API (dbus-python, method calls only).

Adapter layer; the only module that imports ``dbus``. Unit files are written 0644 into the units directory
(default ``/run/fleet/units``, created 0755) and linked at runtime (``LinkUnitFiles(runtime, force)``), enabled
when they have ``[Install]``; states come from one ``ListUnitsByNames`` call for many units. No main loop is
needed: every call is a blocking method call, serialized by a lock. Errors become ``SystemdError`` with the call
and the unit. The connection is the system bus, else (as root) systemd's private socket (go-systemd's order; the
private socket alone dropped replies now and then in tests).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import dbus

from fleetpy.errors import SystemdError, UnitFileError
from fleetpy.model.names import is_valid_name
from fleetpy.model.unit import UnitFile
from fleetpy.systemd.base import SystemdState

log = logging.getLogger("fleetpy.systemd")

DEFAULT_UNITS_DIRECTORY = "/run/fleet/units"
PRIVATE_SOCKET = "/run/systemd/private"
RUNTIME_UNIT_DIR = "/run/systemd/system"
SERVICE = "org.freedesktop.systemd1"
PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
_GONE = frozenset({"org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed"})
_RECONNECT = frozenset({"org.freedesktop.DBus.Error.Disconnected", "org.freedesktop.DBus.Error.NoReply",
                        "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NoServer"})
T = TypeVar("T")


def file_hash(text: str) -> str:
    """The hash fleet would give this file: of its canonical form, or of the raw text if it does not parse."""
    try:
        return UnitFile.parse(text).hash
    except UnitFileError:
        return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()


class DBusUnitManager:
    def __init__(self, units_directory: str = DEFAULT_UNITS_DIRECTORY, *, address: str = "auto",
                 timeout: float = 25.0, reload_timeout: float = 120.0) -> None:
        """``address``: ``auto`` (the system bus, else systemd's private socket), ``system``, or a D-Bus
        address such as ``unix:path=/run/systemd/private``."""
        self.directory = units_directory.rstrip("/") or "/"
        self.address = address
        self.timeout = timeout
        self.reload_timeout = reload_timeout
        self._lock = threading.RLock()
        self._conn: Any = None
        self._manager: Any = None
        self.calls = 0
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        os.chmod(self.directory, 0o755)
        self._hashes: dict[str, str] = self._scan()

    # -- connection ---------------------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._manager is not None:
            return self._manager
        if self.address == "auto":  # go-systemd's New(): the system bus, else (as root) systemd's private socket
            candidates = ["system"]
            if os.geteuid() == 0 and os.path.exists(PRIVATE_SOCKET):
                candidates.append(f"unix:path={PRIVATE_SOCKET}")
        else:
            candidates = [self.address]
        errors = []
        for address in candidates:
            try:
                if address == "system":
                    self._conn = dbus.SystemBus(private=True)
                    proxy = self._conn.get_object(SERVICE, PATH, introspect=False)
                else:
                    self._conn = dbus.connection.Connection(address)
                    proxy = self._conn.get_object(None, PATH, introspect=False)
            except dbus.exceptions.DBusException as err:
                errors.append(f"{address}: {err.get_dbus_message() or err}")
                continue
            self._manager = dbus.Interface(proxy, MANAGER)
            log.debug("connected to systemd via %s", address)
            return self._manager
        raise SystemdError("cannot connect to systemd: " + "; ".join(errors))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # closing must never fail
                    pass
            self._conn = self._manager = None

    def _call(self, what: str, fn: Callable[[Any], T], *, gone_ok: bool = False) -> T | None:
        """Run one method call; SystemdError names ``what`` (call and unit). ``gone_ok``: a unit systemd does not
        know is not an error (None is returned)."""
        with self._lock:
            manager = self._connect()
            self.calls += 1
            try:
                return fn(manager)
            except dbus.exceptions.DBusException as err:
                name = err.get_dbus_name() or ""
                if gone_ok and name in _GONE:
                    return None
                if name in _RECONNECT:
                    self.close()
                message = (err.get_dbus_message() or str(err)).strip().splitlines()[0]
                raise SystemdError(f"{what}: {message}") from err

    # -- files --------------------------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _scan(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for entry in sorted(os.listdir(self.directory)):
            if entry.startswith("."):
                continue
            path = self._path(entry)
            if not is_valid_name(entry) or not os.path.isfile(path):
                log.warning("ignoring %s in the units directory: not a unit file", path)
                continue
            try:
                with open(path, encoding="utf-8", errors="surrogateescape") as f:
                    out[entry] = file_hash(f.read())
            except OSError as err:
                log.warning("ignoring %s: %s", path, err.strerror or err)
        return out

    def _write(self, name: str, unit_file: UnitFile) -> str:
        path = self._path(name)
        tmp = os.path.join(self.directory, f".{name}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(unit_file.contents)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as err:
            raise SystemdError(f"write {path}: {err.strerror or err}") from err
        return path

    def _remove(self, name: str) -> None:
        path = self._path(name)
        link = os.path.join(RUNTIME_UNIT_DIR, name)
        try:  # DisableUnitFiles removes the runtime link; never leave one dangling to a removed file
            if os.path.islink(link) and os.readlink(link) == path:
                os.unlink(link)
        except OSError:
            pass
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise SystemdError(f"remove {path}: {err.strerror or err}") from err

    # -- UnitManager --------------------------------------------------------------------------------------
    def load(self, name: str, unit_file: UnitFile) -> None:
        path = self._write(name, unit_file)
        try:
            self._call(f"LinkUnitFiles {name}",
                       lambda m: m.LinkUnitFiles([path], True, True, signature="asbb", timeout=self.timeout))
            if unit_file.has_section("Install"):
                self._call(f"EnableUnitFiles {name}",
                           lambda m: m.EnableUnitFiles([path], True, True, signature="asbb", timeout=self.timeout))
        except SystemdError:
            self._hashes.pop(name, None)
            try:
                self._remove(name)
            except SystemdError:
                pass
            raise
        self._hashes[name] = unit_file.hash

    def unload(self, name: str) -> None:
        """StopUnit, then (only if the stop was accepted: fleet #1216) disable, reset-failed, remove the file.
        The clean-up calls are best effort: a unit systemd already forgot is not an error."""
        self._call(f"StopUnit {name}", lambda m: m.StopUnit(name, "replace", signature="ss", timeout=self.timeout),
                   gone_ok=True)
        for what, fn in (
            (f"DisableUnitFiles {name}",
             lambda m: m.DisableUnitFiles([name], True, signature="asb", timeout=self.timeout)),
            (f"ResetFailedUnit {name}", lambda m: m.ResetFailedUnit(name, signature="s", timeout=self.timeout)),
        ):
            try:
                self._call(what, fn, gone_ok=True)
            except SystemdError as err:
                log.warning("unload %s: %s (ignored)", name, err)
        self._remove(name)
        self._hashes.pop(name, None)

    def reload(self) -> None:
        self._call("Reload", lambda m: m.Reload(timeout=self.reload_timeout))

    def start(self, name: str) -> None:
        self._call(f"StartUnit {name}", lambda m: m.StartUnit(name, "replace", signature="ss", timeout=self.timeout))

    def stop(self, name: str) -> None:
        self._call(f"StopUnit {name}", lambda m: m.StopUnit(name, "replace", signature="ss", timeout=self.timeout),
                   gone_ok=True)

    def states(self, names: Iterable[str]) -> dict[str, SystemdState]:
        wanted = list(names)
        if not wanted:
            return {}
        rows = self._call(f"ListUnitsByNames ({len(wanted)} units)",
                          lambda m: m.ListUnitsByNames(wanted, signature="as", timeout=self.timeout))
        out: dict[str, SystemdState] = {}
        for name, row in zip(wanted, rows or (), strict=False):
            out[name] = SystemdState(str(row[2]), str(row[3]), str(row[4]))
        return out

    def units(self) -> Mapping[str, str]:
        with self._lock:
            return dict(sorted(self._hashes.items()))
