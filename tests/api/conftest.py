"""Fixtures for the API suites: a running ApiServer (temp unix socket + loopback TCP) and a raw HTTP client.

``Wire`` speaks plain http.client over either transport, so every route is exercised exactly as a fleet client
would, byte for byte. Socket directories live under /tmp (pytest's tmp_path can exceed the 107-byte sun_path).
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fleetpy.api.metrics import Metrics
from fleetpy.api.server import ApiServer
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry

HELLO = UnitFile.parse("[Service]\nExecStart=/bin/sleep 100\n")


def make_unit(name: str = "hello.service", state: JobState = JobState.LAUNCHED, uf: UnitFile = HELLO) -> Unit:
    return Unit(name, uf, state)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 5.0) -> None:
        super().__init__("domain-sock", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> tuple[int, str]:
        err = self.json()["error"]
        return err["code"], err["message"]


class Wire:
    """One-shot requests over a unix socket or TCP (a new connection each time unless ``keep`` is used)."""

    def __init__(self, server: ApiServer, transport: str) -> None:
        self.server = server
        self.transport = transport

    def connection(self) -> http.client.HTTPConnection:
        if self.transport == "unix":
            assert self.server.socket_path is not None
            return UnixConnection(self.server.socket_path)
        assert self.server.tcp_address is not None
        return http.client.HTTPConnection(*self.server.tcp_address, timeout=5.0)

    def request(self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                json_body: bool = True) -> Reply:
        conn = self.connection()
        try:
            payload: bytes | None
            if body is None:
                payload = None
            elif isinstance(body, bytes):
                payload = body
            else:
                payload = json.dumps(body).encode()
            hdrs = dict(headers or {})
            if json_body and payload is not None and "Content-Type" not in hdrs:
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def put(self, path: str, body: Any, **kw: Any) -> Reply:
        return self.request("PUT", path, body, **kw)


@pytest.fixture
def socket_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="fp-api-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def memory_registry() -> Registry:
    return Registry(MemoryStore())


def start_server(registry: Any, socket_dir: str, **kw: Any) -> ApiServer:
    kw.setdefault("metrics", Metrics())
    server = ApiServer(registry, socket_path=f"{socket_dir}/fleet.sock", tcp="127.0.0.1:0", version="9.9.9", **kw)
    server.start()
    return server


@pytest.fixture
def api_server(registry: Registry, socket_dir: str) -> Iterator[ApiServer]:
    """A server over the ``registry`` fixture (memory and real etcd)."""
    server = start_server(registry, socket_dir)
    yield server
    server.close()


@pytest.fixture
def memory_server(memory_registry: Registry, socket_dir: str) -> Iterator[ApiServer]:
    server = start_server(memory_registry, socket_dir)
    yield server
    server.close()


@pytest.fixture(params=["unix", "tcp"])
def wire(request: pytest.FixtureRequest, api_server: ApiServer) -> Wire:
    return Wire(api_server, request.param)


@pytest.fixture(params=["unix", "tcp"])
def mwire(request: pytest.FixtureRequest, memory_server: ApiServer) -> Wire:
    """Like ``wire`` but over MemoryStore only (for cases where the backend cannot matter)."""
    return Wire(memory_server, request.param)
