"""``HttpRegistry`` (``--driver api``) against a running ApiServer: round trips, pagination, errors, transports."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fleetpy.api import reasons as api_reasons
from fleetpy.api.errors import ApiError
from fleetpy.api.messages import Response, json_response
from fleetpy.api.server import ApiServer
from fleetpy.client.http import ApiUnavailable, HttpApiError, HttpRegistry, parse_endpoint
from fleetpy.errors import NotFound, RegistryError, RegistryUnavailable, UsageError
from fleetpy.model.records import JobState, MachineState, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry.registry import Registry
from tests.api.conftest import HELLO, Wire, make_unit, start_server

M1 = "c7ed6cafe52543569dbc19ca848b3b1d"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("unix:///var/run/fleet.sock", ("unix", "/var/run/fleet.sock", 0, "/fleet/v1/")),
        ("file:///tmp/x.sock", ("unix", "/tmp/x.sock", 0, "/fleet/v1/")),
        ("http://127.0.0.1:54728", ("http", "127.0.0.1", 54728, "/fleet/v1/")),
        ("http://host:1/prefix/", ("http", "host", 1, "/prefix/fleet/v1/")),
        ("https://[::1]:8443", ("https", "::1", 8443, "/fleet/v1/")),
        ("http://example.com", ("http", "example.com", 80, "/fleet/v1/")),
    ],
)
def test_endpoints(endpoint: str, expected: tuple[str, str, int, str]) -> None:
    assert parse_endpoint(endpoint) == expected


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("unix://var/run/fleet.sock", 'unable to connect to host "var" with scheme "unix"'),
        ("/var/run/fleet.sock", "URL scheme undefined"),
        ("ftp://x", "unknown scheme in fleet endpoint: ftp"),
        ("http://:80", "no host"),
        ("http://h:99999", "invalid port"),
    ],
)
def test_bad_endpoints(endpoint: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        HttpRegistry(endpoint)


@pytest.fixture(params=["unix", "tcp"])
def client(request: pytest.FixtureRequest, api_server: ApiServer) -> Iterator[HttpRegistry]:
    if request.param == "unix":
        endpoint = f"unix://{api_server.socket_path}"
    else:
        assert api_server.tcp_address is not None
        host, port = api_server.tcp_address
        endpoint = f"http://{host}:{port}"
    with HttpRegistry(endpoint, timeout=5) as http_registry:
        yield http_registry


def test_round_trip(client: HttpRegistry, registry: Registry) -> None:
    """create / list / set-state / destroy through the API land in the registry, and read back identically."""
    unit = make_unit("hello.service", JobState.LOADED)
    client.create_unit(unit)
    assert registry.unit("hello.service") == unit
    assert client.units() == [unit]
    assert client.unit("hello.service") == unit
    client.set_target_state("hello.service", JobState.LAUNCHED)
    assert registry.unit("hello.service").target_state is JobState.LAUNCHED  # type: ignore[union-attr]
    client.create_unit(make_unit("hello.service", JobState.INACTIVE,
                                 UnitFile.parse("[Service]\nExecStart=/bin/sleep 1\n")))  # --replace
    replaced = registry.unit("hello.service")
    assert replaced is not None and replaced.hash != HELLO.hash and replaced.target_state is JobState.INACTIVE
    assert client.destroy_unit("hello.service") is True
    assert client.destroy_unit("hello.service") is False
    assert client.unit("hello.service") is None and client.units() == []
    assert client.scheduled_unit("hello.service") is None and client.job("hello.service") is None
    assert client.reasons() == {}


def test_schedule_state_and_machines(client: HttpRegistry, registry: Registry) -> None:
    registry.create_unit(make_unit())
    registry.create_unit(make_unit("idle.service", JobState.INACTIVE))
    registry.create_machine_state(MachineState(M1, "10.0.0.1", {"role": "web"}), ttl=60)
    registry.schedule_unit("hello.service", M1)
    state = UnitState("hello.service", M1, "loaded", "active", "running", HELLO.hash)
    registry.save_unit_state(state, ttl=60)
    registry.unit_heartbeat("hello.service", M1, ttl=60)

    scheduled = client.scheduled_unit("hello.service")
    assert scheduled is not None and scheduled.target_machine == M1 and scheduled.current_state is JobState.LAUNCHED
    assert {s.name: s.target_machine for s in client.schedule()} == {"hello.service": M1, "idle.service": None}
    job = client.job("hello.service")
    assert job is not None and (job.unit_hash, job.target, job.job_state) == (HELLO.hash, M1, M1)
    assert client.unit_states() == [state]
    assert client.unit_states(machine_id=M1, unit_name="hello.service") == [state]
    assert client.unit_states(machine_id="other") == []
    machines = client.machines()
    assert machines == [MachineState(M1, "10.0.0.1", {"role": "web"})]
    client.set_machine_metadata(M1, "az", "b")
    assert client.machine(M1).metadata == {"role": "web", "az": "b"}  # type: ignore[union-attr]
    client.set_machine_metadata(M1, "role", "")
    assert registry.machine(M1).metadata == {"az": "b"}  # type: ignore[union-attr]
    assert client.machine("nope") is None


def test_reasons_through_the_extension(client: HttpRegistry, registry: Registry) -> None:
    assert client.reasons() == {}
    registry.set_reason("nowhere.service", "no machine has metadata role=nothing")
    registry.set_reason("a.service", "conflicts with b.service")
    assert client.reasons() == {"a.service": "conflicts with b.service",
                                "nowhere.service": "no machine has metadata role=nothing"}


def test_reasons_from_a_fleetd_without_the_extension(client: HttpRegistry, registry: Registry,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """fleetd answers ``/reasons`` 404: no reasons, no error; a malformed answer is an error."""
    registry.set_reason("nowhere.service", "x")

    def fleetd(reg: object) -> Response:
        raise ApiError(404)

    monkeypatch.setattr(api_reasons, "list_reasons", fleetd)
    assert client.reasons() == {}
    monkeypatch.setattr(api_reasons, "list_reasons", lambda reg: json_response(200, {"reasons": [{"name": 1}]}))
    with pytest.raises(RegistryError, match="malformed answer to GET reasons"):
        client.reasons()


def test_250_units_in_3_pages(memory_server: ApiServer, memory_registry: Registry,
                              caplog: pytest.LogCaptureFixture) -> None:
    for i in range(250):
        memory_registry.create_unit(make_unit(f"u{i:03d}.service"))
    wire = Wire(memory_server, "unix")
    first = wire.get("/fleet/v1/units").json()
    assert len(first["units"]) == 100 and first["nextPageToken"] == "ZAACAA=="
    second = wire.get("/fleet/v1/units?nextPageToken=ZAACAA==").json()
    assert len(second["units"]) == 100 and second["nextPageToken"] == "ZAADAA=="
    third = wire.get("/fleet/v1/units?nextPageToken=ZAADAA==").json()
    assert len(third["units"]) == 50 and "nextPageToken" not in third
    assert [u["name"] for u in first["units"] + second["units"] + third["units"]] == [
        f"u{i:03d}.service" for i in range(250)]

    caplog.set_level(logging.DEBUG, logger="fleetpy.client")
    with HttpRegistry(f"unix://{memory_server.socket_path}") as http_registry:
        units = http_registry.units()
    assert [u.name for u in units] == [f"u{i:03d}.service" for i in range(250)]
    requests = [r.getMessage() for r in caplog.records if r.name == "fleetpy.client"]
    assert requests == [
        "HTTP GET http://domain-sock/fleet/v1/units?alt=json",
        "HTTP GET http://domain-sock/fleet/v1/units?alt=json&nextPageToken=ZAACAA%3D%3D",
        "HTTP GET http://domain-sock/fleet/v1/units?alt=json&nextPageToken=ZAADAA%3D%3D",
    ]


def test_errors(memory_server: ApiServer, memory_registry: Registry) -> None:
    with HttpRegistry(f"unix://{memory_server.socket_path}") as http_registry:
        with pytest.raises(NotFound):
            http_registry.set_target_state("missing.service", JobState.LAUNCHED)
        bad = make_unit("x.service", uf=UnitFile.parse("[X-Fleet]\nMachineID=a\nGlobal=true\n"))
        with pytest.raises(HttpApiError) as info:
            http_registry.create_unit(bad)
        assert info.value.status == 400
        assert str(info.value) == "googleapi: Error 400: MachineID cannot be used with Global"
        memory_server.set_available(False)
        with pytest.raises(ApiUnavailable) as down:
            http_registry.units()
        assert isinstance(down.value, RegistryUnavailable) and down.value.status == 503
    with pytest.raises(RegistryUnavailable, match=r"fleet API at unix:///nonexistent\.sock"):
        HttpRegistry("unix:///nonexistent.sock").units()


def test_kept_connection_survives_a_server_restart(memory_registry: Registry, socket_dir: str) -> None:
    server = start_server(memory_registry, socket_dir)
    http_registry = HttpRegistry(f"unix://{server.socket_path}")
    assert http_registry.units() == []
    server.close()
    memory_registry.create_unit(make_unit())
    server = start_server(memory_registry, socket_dir)
    try:
        assert [u.name for u in http_registry.units()] == ["hello.service"]  # retried on a fresh connection
        assert http_registry.destroy_unit("hello.service")
    finally:
        http_registry.close()
        server.close()


def _fd_forward_dial(socket_path: str, code: str) -> tuple[HttpRegistry, list[subprocess.Popen[bytes]]]:
    """A client whose every connection is a ``fd-forward`` subprocess (what --tunnel runs on the bastion)."""
    procs: list[subprocess.Popen[bytes]] = []

    def dial(timeout: float | None) -> socket.socket:
        ours, theirs = socket.socketpair()
        procs.append(subprocess.Popen([sys.executable, "-c", code, socket_path], stdin=theirs.fileno(),
                                      stdout=theirs.fileno(), cwd=os.getcwd()))
        theirs.close()
        ours.settimeout(timeout)
        return ours

    return HttpRegistry("unix:///ignored.sock", dial=dial, timeout=10), procs


@pytest.mark.parametrize("code", [
    pytest.param("import sys; from fleetpy.api.fdforward import forward; forward(sys.argv[1])", id="library"),
    pytest.param("from fleetpy.cli.cmd_fdforward import fd_forward; fd_forward()", id="click-command"),
])
def test_client_through_fd_forward(memory_server: ApiServer, memory_registry: Registry, code: str) -> None:
    assert memory_server.socket_path is not None
    http_registry, procs = _fd_forward_dial(memory_server.socket_path, code)
    with http_registry:
        http_registry.create_unit(make_unit())
        assert [u.name for u in http_registry.units()] == ["hello.service"]
    for proc in procs:
        assert proc.wait(timeout=10) == 0
    assert memory_registry.unit("hello.service") is not None


def test_fd_forward_to_a_missing_socket_fails() -> None:
    proc = subprocess.run([sys.executable, "-c", "from fleetpy.cli.cmd_fdforward import fd_forward; fd_forward()",
                           "/nonexistent/fleet.sock"], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and b"unable to connect to /nonexistent/fleet.sock" in proc.stderr


def test_http_registry_is_an_api_registry(memory_server: ApiServer, memory_registry: Registry,
                                          socket_dir: str) -> None:
    """A relay: an ApiServer whose registry is an HttpRegistry talking to another ApiServer gives the same answers."""
    memory_registry.create_unit(make_unit())
    memory_registry.create_machine_state(MachineState(M1, "10.0.0.1"), ttl=60)
    upstream = HttpRegistry(f"unix://{memory_server.socket_path}")
    relay = ApiServer(upstream, socket_path=f"{socket_dir}/relay.sock", version="9.9.9")
    with relay, upstream:
        direct, relayed = Wire(memory_server, "unix"), Wire(relay, "unix")
        for path in ("/fleet/v1/units", "/fleet/v1/units/hello.service", "/fleet/v1/machines", "/fleet/v1/state",
                     "/fleet/v1/units/missing.service"):
            assert relayed.get(path).body == direct.get(path).body
        assert relayed.put("/fleet/v1/units/hello.service", {"desiredState": "loaded"}).status == 204
        assert memory_registry.unit("hello.service").target_state is JobState.LOADED  # type: ignore[union-attr]
