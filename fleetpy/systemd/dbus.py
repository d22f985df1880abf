"""``DBusUnitManager``: the ``UnitManager`` port over systemd's D-Bus API (dbus-python, method calls only).

Adapter layer; the only module that imports ``dbus``. Unit files are written 0644 into the units directory
(default ``/run/fleet/units``, created 0755) and linked at runtime (``LinkUnitFiles(runtime, force)``), enabled
when they have ``[Install]``; states come from one ``ListUnitsByNames`` call for many units. No main loop is
needed: every call is a blocking method call, serialized by a lock. Errors become ``SystemdError`` with the call
and the unit. The connection is the system bus, else (as root) systemd's private socket (go-systemd's order; the
private socket alone dropped replies now and then in tests).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import dbus
import dbus.lowlevel

from fleetpy.errors import SystemdError, UnitFileError
from fleetpy.model.names import is_valid_name
from fleetpy.model.unit import UnitFile
from fleetpy.systemd.base import Failures, SystemdState, TransientSystemdError, raise_first

log = logging.getLogger("fleetpy.systemd")

DEFAULT_UNITS_DIRECTORY = "/run/fleet/units"
PRIVATE_SOCKET = "/run/systemd/private"
RUNTIME_UNIT_DIR = "/run/systemd/system"
SERVICE = "org.freedesktop.systemd1"
PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
_GONE = frozenset({"org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.LoadFailed"})
WINDOW = 64  # calls in flight at once in a pipelined batch
_TRANSIENT = frozenset(f"org.freedesktop.DBus.Error.{n}" for n in (
    "LimitsExceeded", "NoReply", "Disconnected", "Timeout", "TimedOut", "NoMemory", "ServiceUnknown", "NoServer",
    "NameHasNoOwner"))  # the bus, not systemd, failed: worth retrying
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
        self._destination: str | None = SERVICE
        self.calls = 0
        try:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
            os.chmod(self.directory, 0o755)
            self._hashes: dict[str, str] = self._scan()
        except OSError as err:
            raise SystemdError(f"units directory {self.directory}: {err.strerror or err}") from err

    def connect(self) -> None:
        """Connect now (fleetpyd does at start, to fail early and clearly when systemd is unreachable)."""
        with self._lock:
            self._connect()

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
            self._destination = SERVICE if address == "system" else None
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
                error = TransientSystemdError if name in _TRANSIENT else SystemdError
                raise error(f"{what}: {message}") from err

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
        if not is_valid_name(name):  # names come from the registry: never let one reach outside the directory
            raise SystemdError(f"write {name!r}: not a valid unit name")
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

    # -- pipelined calls ------------------------------------------------------------------------------------
    def _pipeline(self, method: str, signature: str, calls: Sequence[tuple[str, tuple[Any, ...]]], *,
                  gone_ok: bool = False) -> Failures:
        """Send every ``(unit, args)`` call of ``method`` at once, then collect the replies: one round trip's
        latency for the lot instead of one per unit. Returns the failed units."""
        if not calls:
            return {}
        replies: list[Any] = [None] * len(calls)
        with self._lock:
            self._connect()
            conn, destination = self._conn, self._destination
            pending: collections.deque[Any] = collections.deque()
            for i, (_, args) in enumerate(calls):
                message = dbus.lowlevel.MethodCallMessage(destination, PATH, MANAGER, method)
                message.append(*args, signature=signature)

                def keep(reply: Any, i: int = i) -> None:
                    replies[i] = reply
                if len(pending) >= WINDOW:  # the bus caps pending replies per connection (128 on the system bus)
                    pending.popleft().block()
                pending.append(conn.send_message_with_reply(message, keep, self.timeout, require_main_loop=False))
                self.calls += 1
            while pending:
                pending.popleft().block()
        failures: Failures = {}
        for (unit, _), reply in zip(calls, replies, strict=True):
            if reply is None or isinstance(reply, dbus.lowlevel.ErrorMessage):
                name = reply.get_error_name() if reply is not None else "org.freedesktop.DBus.Error.NoReply"
                if gone_ok and name in _GONE:
                    continue
                args = reply.get_args_list() if reply is not None else []
                text = str(args[0]).strip().splitlines()[0] if args else name
                if name in _RECONNECT:
                    self.close()
                error = TransientSystemdError if name in _TRANSIENT else SystemdError
                failures[unit] = error(f"{method} {unit}: {text}")
        return failures

    # -- UnitManager --------------------------------------------------------------------------------------
    def load_many(self, units: Mapping[str, UnitFile]) -> Failures:
        """Write every file, link them all in one LinkUnitFiles call (enable those with ``[Install]`` in one
        EnableUnitFiles call); a failing batch call is retried unit by unit to find the culprit."""
        failures: Failures = {}
        paths: dict[str, str] = {}
        for name, unit_file in units.items():
            try:
                paths[name] = self._write(name, unit_file)
            except SystemdError as err:
                failures[name] = err
        for call, wanted in (("LinkUnitFiles", list(paths)),
                             ("EnableUnitFiles", [n for n in paths if units[n].has_section("Install")])):
            wanted = [n for n in wanted if n not in failures]
            if not wanted:
                continue
            label = ", ".join(wanted) if len(wanted) < 4 else f"{len(wanted)} units"
            try:
                self._files_call(call, [paths[n] for n in wanted], label)
            except SystemdError as err:
                if len(wanted) == 1:
                    failures[wanted[0]] = err
                    continue
                for name in wanted:  # find the culprits
                    try:
                        self._files_call(call, [paths[name]], name)
                    except SystemdError as one:
                        failures[name] = one
        with self._lock:
            for name in units:
                if name in failures:
                    self._hashes.pop(name, None)
                    self._forget(name)
                else:
                    self._hashes[name] = units[name].hash
        return failures

    def _files_call(self, call: str, paths: list[str], what: str) -> None:
        if call == "LinkUnitFiles":
            self._call(f"{call} {what}",
                       lambda m: m.LinkUnitFiles(paths, True, True, signature="asbb", timeout=self.timeout))
        else:
            self._call(f"{call} {what}",
                       lambda m: m.EnableUnitFiles(paths, True, True, signature="asbb", timeout=self.timeout))

    def _forget(self, name: str) -> None:
        try:
            self._remove(name)
        except SystemdError as err:
            log.warning("%s", err)

    def unload_many(self, names: Sequence[str]) -> Failures:
        """StopUnit for all; then, only for the units whose stop was accepted (fleet #1216): disable the ones
        with ``[Install]`` (one DisableUnitFiles call; the runtime link of the others is removed directly, which
        is all disabling does for them), ResetFailedUnit, remove the file. Clean-up problems are only logged."""
        failures = self._pipeline("StopUnit", "ss", [(n, (n, "replace")) for n in names], gone_ok=True)
        done = [n for n in names if n not in failures]
        with_install = [n for n in done if self._has_install(n)]
        if with_install:
            try:
                self._call(f"DisableUnitFiles {', '.join(with_install[:3])}{'...' if len(with_install) > 3 else ''}",
                           lambda m: m.DisableUnitFiles(with_install, True, signature="asb", timeout=self.timeout))
            except SystemdError as err:
                log.warning("unload: %s (ignored)", err)
        reset = self._pipeline("ResetFailedUnit", "s", [(n, (n,)) for n in done], gone_ok=True)
        for name, problem in reset.items():
            log.warning("unload %s: %s (ignored)", name, problem)
        with self._lock:
            for name in done:
                try:
                    self._remove(name)
                except SystemdError as err:
                    failures[name] = err
                    continue
                self._hashes.pop(name, None)
        return failures

    def _has_install(self, name: str) -> bool:
        try:
            with open(self._path(name), encoding="utf-8", errors="surrogateescape") as f:
                return UnitFile.parse(f.read()).has_section("Install")
        except (OSError, UnitFileError):
            return True  # unknown: let systemd disable it

    def start_many(self, names: Sequence[str]) -> Failures:
        return self._pipeline("StartUnit", "ss", [(n, (n, "replace")) for n in names])

    def stop_many(self, names: Sequence[str]) -> Failures:
        return self._pipeline("StopUnit", "ss", [(n, (n, "replace")) for n in names], gone_ok=True)

    def load(self, name: str, unit_file: UnitFile) -> None:
        raise_first(self.load_many({name: unit_file}))

    def unload(self, name: str) -> None:
        raise_first(self.unload_many([name]))

    def start(self, name: str) -> None:
        raise_first(self.start_many([name]))

    def stop(self, name: str) -> None:
        raise_first(self.stop_many([name]))

    def reload(self) -> None:
        self._call("Reload", lambda m: m.Reload(timeout=self.reload_timeout))

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
