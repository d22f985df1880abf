"""``HttpRegistry``: the registry operations the CLI uses, over fleet's HTTP API v1 (``--driver api``).

Adapter layer (HTTP client on ``http.client``). Endpoints follow fleetctl's ``getHTTPClient``: the scheme is
required; ``unix:///var/run/fleet.sock`` (or ``file://``) dials the socket (``unix://var/run/...``, two slashes, is
an error: the path became a host); ``http(s)://host:port[/path]`` dials TCP, with TLS from ca/cert/key files. The
client appends ``/fleet/v1/`` and ``?alt=json``, follows ``nextPageToken`` through every page and logs each request
at DEBUG (``HTTP GET http://domain-sock/fleet/v1/units?alt=json``). ``dial`` replaces how a connection is opened:
that is the seam for ``--tunnel`` (an SSH channel, or ``fleetpy fd-forward`` run on the bastion). One keep-alive
connection is reused; a request that fails on a reused connection before any answer is retried once on a new one.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fleetpy import __version__
from fleetpy.api.schema import (
    dumps,
    machine_from_json,
    option_json,
    unit_from_json,
    unit_state_from_json,
)
from fleetpy.client.config import API_SOCKET
from fleetpy.errors import NotFound, RegistryError, RegistryUnavailable, UsageError
from fleetpy.model.records import JobState, MachineState, ScheduledUnit, Unit, UnitState
from fleetpy.registry.decode import JobRecord

log = logging.getLogger("fleetpy.client")

DEFAULT_ENDPOINT = API_SOCKET
API_PATH = "fleet/v1/"
MAX_PAGES = 0xFFFF
Dial = Callable[[float | None], socket.socket]
"""Opens one connected stream socket (the argument is the timeout in seconds)."""


class HttpApiError(RegistryError):
    """The API answered with an error; ``str()`` is what fleetctl prints (``googleapi: Error 409: ...``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"googleapi: Error {status}: {message}" if message else f"googleapi: got HTTP response "
                         f"code {status}")
        self.status = status
        self.message = message


class ApiUnavailable(HttpApiError, RegistryUnavailable):
    """503: the fleetpyd serving the API lost etcd."""


def parse_endpoint(endpoint: str) -> tuple[str, str, int, str]:
    """-> (scheme, host or socket path, port, base path ending in ``/fleet/v1/``) or UsageError."""
    parts = urlsplit(endpoint.strip())
    scheme = parts.scheme.lower()
    if not scheme:
        raise UsageError("URL scheme undefined")
    if scheme in ("unix", "file"):
        if parts.netloc:
            raise UsageError(f'unable to connect to host "{parts.netloc}" with scheme "{scheme}"')
        if not parts.path:
            raise UsageError(f"no socket path in fleet endpoint {endpoint!r}")
        return "unix", parts.path, 0, "/" + API_PATH
    if scheme not in ("http", "https"):
        raise UsageError(f"unknown scheme in fleet endpoint: {scheme}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"invalid port in fleet endpoint {endpoint!r}") from None
    if not parts.hostname:
        raise UsageError(f"no host in fleet endpoint {endpoint!r}")
    return scheme, parts.hostname, port, parts.path.rstrip("/") + "/" + API_PATH


class _Connection(http.client.HTTPConnection):
    """http.client over whatever ``dial`` returns (unix socket, TCP, an SSH channel), optionally wrapped in TLS."""

    def __init__(self, host: str, *, timeout: float | None, dial: Dial, tls: ssl.SSLContext | None,
                 server_name: str) -> None:
        super().__init__(host, timeout=timeout)
        self._dial = dial
        self._tls = tls
        self._server_name = server_name

    def connect(self) -> None:
        sock = self._dial(self.timeout)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self._server_name)
        self.sock = sock


def _tls_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            context.load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as err:
        raise UsageError(f"cannot load TLS files: {err}") from err
    return context


class HttpRegistry:
    """The CLI's registry operations over the API. Thread-safe (one request at a time); close it when done."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, timeout: float = 3.0, ca_file: str = "",
                 cert_file: str = "", key_file: str = "", dial: Dial | None = None) -> None:
        self.endpoint = endpoint
        self.scheme, self.host, self.port, self.base_path = parse_endpoint(endpoint)
        self.timeout = timeout
        self._tls = _tls_context(ca_file, cert_file, key_file) if self.scheme == "https" else None
        self._dial: Dial = dial or self._default_dial
        self._conn: _Connection | None = None
        self._lock = threading.Lock()
        self._display_host = "domain-sock" if self.scheme == "unix" else f"{self.host}:{self.port}"

    def _default_dial(self, timeout: float | None) -> socket.socket:
        if self.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self.host)
            except OSError:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait between a request's writes
        return sock

    # -- transport ------------------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> HttpRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _new_connection(self) -> _Connection:
        host = "domain-sock" if self.scheme == "unix" else self.host
        if self.scheme != "unix" and self.port not in (80, 443):
            host = f"{host}:{self.port}"
        return _Connection(host, timeout=self.timeout, dial=self._dial, tls=self._tls, server_name=self.host)

    def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                body: Any = None) -> tuple[int, bytes]:
        """One API call: ``path`` is relative to ``/fleet/v1/``; returns (status, body)."""
        target = self.base_path + path + "?" + urlencode([("alt", "json"), *(query or [])])
        payload = dumps(body) if body is not None else None
        headers = {"User-Agent": f"fleetpy/{__version__}", "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        scheme = "https" if self.scheme == "https" else "http"
        log.debug("HTTP %s %s://%s%s", method, scheme, self._display_host, target)
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None
                conn = self._conn or self._new_connection()
                self._conn = conn
                try:
                    conn.request(method, target, body=payload, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as err:
                    self._drop()
                    if reused and attempt == 1:
                        continue
                    raise RegistryUnavailable(f"fleet API at {self.endpoint}: {err or type(err).__name__}") from err
                except (OSError, http.client.HTTPException) as err:
                    self._drop()
                    raise RegistryUnavailable(f"fleet API at {self.endpoint}: {err or type(err).__name__}") from err
                if response.will_close:
                    self._drop()
                return response.status, data
        raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _json(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
              body: Any = None, ok: tuple[int, ...] = (200,), absent: tuple[int, ...] = ()) -> Any:
        """Decoded JSON of a successful answer; None for a status in ``absent``; HttpApiError otherwise."""
        status, data = self.request(method, path, query=query, body=body)
        if status in absent:
            return None
        if status not in ok:
            raise self._error(status, data)
        if not data:
            return {}
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as err:
            raise RegistryError(f"fleet API at {self.endpoint}: malformed JSON answer to {method} {path}") from err

    @staticmethod
    def _error(status: int, data: bytes) -> HttpApiError:
        message = ""
        try:
            decoded = json.loads(data)
            if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
                message = str(decoded["error"].get("message") or "")
        except (ValueError, RecursionError):
            message = data[:200].decode("utf-8", "replace").strip()
        return ApiUnavailable(status, message) if status == 503 else HttpApiError(status, message)

    def _pages(self, path: str, key: str, query: list[tuple[str, str]] | None = None) -> Iterator[Any]:
        token = ""
        for _ in range(MAX_PAGES):
            page_query = list(query or []) + ([("nextPageToken", token)] if token else [])
            page = self._json("GET", path, query=page_query)
            if not isinstance(page, dict):
                raise RegistryError(f"fleet API at {self.endpoint}: {path} answered a non-object")
            yield from page.get(key) or []
            token = str(page.get("nextPageToken") or "")
            if not token:
                return
        raise RegistryError(f"fleet API at {self.endpoint}: more than {MAX_PAGES} pages of {path}")

    def _decode(self, fn: Callable[[Any], Any], value: Any) -> Any:
        try:
            return fn(value)
        except (ValueError, RegistryError) as err:
            raise RegistryError(f"fleet API at {self.endpoint}: malformed answer: {err}") from err

    # -- units ------------------------------------------------------------------------------------------
    def _unit_list(self) -> list[tuple[Unit, ScheduledUnit]]:
        return [self._decode(unit_from_json, item) for item in self._pages("units", "units")]

    def _unit_get(self, name: str) -> tuple[Unit, ScheduledUnit] | None:
        found = self._json("GET", "units/" + quote(name, safe=""), absent=(404,))
        return None if found is None else self._decode(unit_from_json, found)

    def units(self) -> list[Unit]:
        return [unit for unit, _ in self._unit_list()]

    def unit(self, name: str) -> Unit | None:
        found = self._unit_get(name)
        return None if found is None else found[0]

    def schedule(self) -> list[ScheduledUnit]:
        return [scheduled for _, scheduled in self._unit_list()]

    def units_and_schedule(self) -> tuple[list[Unit], list[ScheduledUnit]]:
        items = self._unit_list()
        return [unit for unit, _ in items], [scheduled for _, scheduled in items]

    def scheduled_unit(self, name: str) -> ScheduledUnit | None:
        """From the API's ``machineID``/``currentState`` (a global unit has neither: unscheduled, inactive)."""
        found = self._unit_get(name)
        return None if found is None else found[1]

    def job(self, name: str) -> JobRecord | None:
        """What the etcd driver's ``job/<name>`` says, rebuilt from the API's Unit (job-state = launched there)."""
        found = self._unit_get(name)
        if found is None:
            return None
        unit, scheduled = found
        launched = scheduled.current_state is JobState.LAUNCHED and scheduled.target_machine
        return JobRecord(name, unit.hash, unit.target_state, scheduled.target_machine,
                         scheduled.target_machine if launched else None)

    def create_unit(self, unit: Unit) -> None:
        """PUT with options and desiredState: creates, or replaces a unit whose options differ (fleet's 201)."""
        body = {"desiredState": unit.target_state.value, "name": unit.name,
                "options": [option_json(o) for o in unit.unit_file.options]}
        self._json("PUT", "units/" + quote(unit.name, safe=""), body=body, ok=(201, 204))

    def create_units(self, units: Sequence[Unit]) -> None:
        for unit in units:  # one request at a time on the API's connection anyway
            self.create_unit(unit)

    def set_target_states(self, names: Sequence[str], state: JobState) -> None:
        for name in names:
            self.set_target_state(name, state)

    def set_target_state(self, name: str, state: JobState) -> None:
        status, data = self.request("PUT", "units/" + quote(name, safe=""),
                                    body={"desiredState": state.value, "name": name})
        if status == 409 and b"does not exist" in data:
            raise NotFound(f"unit {name} does not exist")
        if status not in (201, 204):
            raise self._error(status, data)

    def destroy_unit(self, name: str) -> bool:
        """False when there was no such unit (404)."""
        found = self._json("DELETE", "units/" + quote(name, safe=""), ok=(204, 200), absent=(404,))
        return found is not None

    # -- states and machines ----------------------------------------------------------------------------
    def unit_states(self, *, machine_id: str | None = None, unit_name: str | None = None) -> list[UnitState]:
        """States sorted by unit name then machine ID (the server's order), filtered server-side."""
        query = [(k, v) for k, v in (("machineID", machine_id), ("unitName", unit_name)) if v]
        return [self._decode(unit_state_from_json, item) for item in self._pages("state", "states", query)]

    def machines(self) -> list[MachineState]:
        return [self._decode(machine_from_json, item) for item in self._pages("machines", "machines")]

    def machine(self, machine_id: str) -> MachineState | None:
        return next((m for m in self.machines() if m.id == machine_id), None)

    def set_machine_metadata(self, machine_id: str, key: str, value: str) -> None:
        """PATCH with fleet's wire format; ``""`` removes the key."""
        op: dict[str, Any] = {"op": "remove" if value == "" else "add", "path": f"/{machine_id}/metadata/{key}"}
        if value:
            op["value"] = {"value": value}
        self._json("PATCH", "machines", body=[op], ok=(204, 200))

    def reasons(self) -> dict[str, str]:
        """fleetpy's scheduling reasons from its ``/reasons`` extension; empty from a fleetd (404 there)."""
        page = self._json("GET", "reasons", absent=(404,))
        if page is None:
            return {}
        items = page.get("reasons") if isinstance(page, dict) else None
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("name"), str) and isinstance(i.get("reason"), str)
                for i in items):
            raise RegistryError(f"fleet API at {self.endpoint}: malformed answer to GET reasons")
        return {i["name"]: i["reason"] for i in items}
