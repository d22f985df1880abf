"""The ApiServer as a component: socket file handling, body limits, keep-alive, protocol errors, availability."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time

import pytest

from fleetpy.api.errors import ListenError
from fleetpy.api.listeners import parse_tcp, systemd_sockets
from fleetpy.api.server import MAX_BODY, ApiServer
from fleetpy.registry.registry import Registry
from tests.api.conftest import UnixConnection, Wire, start_server


def _raw(server: ApiServer, data: bytes, *, read_until_close: bool = True) -> bytes:
    assert server.socket_path is not None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(server.socket_path)
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if not read_until_close and b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_socket_mode_is_0660_and_removed_on_close(memory_registry: Registry, socket_dir: str) -> None:
    server = start_server(memory_registry, socket_dir)
    path = f"{socket_dir}/fleet.sock"
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert os.listdir(socket_dir) == ["fleet.sock"]  # no temporary name left behind
    server.close()
    assert not os.path.exists(path)


def test_socket_group_and_custom_mode(memory_registry: Registry, socket_dir: str) -> None:
    server = ApiServer(memory_registry, socket_path=f"{socket_dir}/s.sock", socket_mode=0o600,
                       socket_group=os.getgid())
    with server:
        st = os.stat(f"{socket_dir}/s.sock")
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_gid == os.getgid()


def test_stale_socket_is_replaced_but_a_live_one_is_refused(memory_registry: Registry, socket_dir: str) -> None:
    path = f"{socket_dir}/fleet.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    with ApiServer(memory_registry, socket_path=path) as server:
        assert Wire(server, "unix").get("/fleet/v1/units").status == 200
        with pytest.raises(ListenError, match="another server is listening"):
            ApiServer(memory_registry, socket_path=path).start()
    with open(path, "w") as handle:
        handle.write("not a socket")
    with pytest.raises(ListenError, match="not a socket"):
        ApiServer(memory_registry, socket_path=path).start()


def test_close_leaves_a_replacement_socket_alone(memory_registry: Registry, socket_dir: str) -> None:
    path = f"{socket_dir}/fleet.sock"
    server = ApiServer(memory_registry, socket_path=path)
    server.start()
    os.unlink(path)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    server.close()
    assert os.path.exists(path)
    other.close()


def test_needs_somewhere_to_listen(memory_registry: Registry) -> None:
    with pytest.raises(ValueError):
        ApiServer(memory_registry, socket_path=None)
    with pytest.raises(ListenError):
        parse_tcp("localhost")


def test_413_from_content_length_without_reading_the_body(memory_server: ApiServer) -> None:
    """Only the headers are sent: an answer proves the server did not wait for (or read) the body."""
    started = time.monotonic()
    reply = _raw(memory_server, b"PUT /fleet/v1/units/a.service HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
    assert time.monotonic() - started < 2
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in head
    assert json.loads(body)["error"]["code"] == 413


def test_413_answers_expect_100_continue(memory_server: ApiServer) -> None:
    reply = _raw(memory_server, b"PUT /fleet/v1/units/a.service HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                b"Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 413") and b"100 Continue" not in reply


def test_expect_100_continue_within_the_limit(memory_server: ApiServer) -> None:
    body = json.dumps({"desiredState": "inactive",
                       "options": [{"section": "Service", "name": "ExecStart", "value": "/bin/true"}]}).encode()
    assert memory_server.socket_path is not None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(memory_server.socket_path)
        sock.sendall(b"PUT /fleet/v1/units/a.service HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert sock.recv(100).startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        assert b"HTTP/1.1 201" in sock.recv(1000)


def test_body_limit_is_inclusive(memory_server: ApiServer) -> None:
    wire = Wire(memory_server, "tcp")
    body = json.dumps({"desiredState": "inactive",
                       "options": [{"section": "Service", "name": "ExecStart", "value": "/bin/true"}]}).encode()
    exact = body + b" " * (MAX_BODY - len(body))
    assert wire.put("/fleet/v1/units/a.service", exact).status == 201
    assert wire.put("/fleet/v1/units/b.service", exact + b" ").status == 413


@pytest.mark.parametrize(
    ("head", "code"),
    [
        pytest.param(b"PUT /fleet/v1/units/a.service HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400, id="cl-text"),
        pytest.param(b"PUT /fleet/v1/units/a.service HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                     400, id="cl-twice"),
        pytest.param(b"PUT /fleet/v1/units/a.service HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411,
                     id="chunked"),
        pytest.param(b"GARBAGE\r\n\r\n", 400, id="bad-request-line"),
        pytest.param(b"GET /fleet/v1/units HTTP/9.0\r\n\r\n", 505, id="bad-version"),
        pytest.param(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, id="uri-too-long"),
    ],
)
def test_protocol_errors_get_fleet_json(memory_server: ApiServer, head: bytes, code: int) -> None:
    reply = _raw(memory_server, head)
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 %d" % code) or status_line.startswith(b"HTTP/1.0 %d" % code)
    body = rest.partition(b"\r\n\r\n")[2]
    assert json.loads(body)["error"]["code"] == code
    assert memory_server.addresses  # and the server is still serving
    assert Wire(memory_server, "unix").get("/fleet/v1/units").status == 200


def test_keep_alive_serves_many_requests_on_one_connection(memory_server: ApiServer) -> None:
    assert memory_server.socket_path is not None
    conn = UnixConnection(memory_server.socket_path)
    for _ in range(5):
        conn.request("GET", "/fleet/v1/units")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"{}"
    conn.request("DELETE", "/fleet/v1/units/missing.service")
    assert conn.getresponse().status == 404
    conn.close()


def test_tcp_connections_disable_nagle_and_unix_ones_need_not(memory_server: ApiServer) -> None:
    # a response is written head then body: with Nagle on, the body waited ~40 ms for the client's delayed ACK
    handlers = {server.socket.family: server.RequestHandlerClass
                for server in memory_server._servers}
    assert handlers[socket.AF_INET].disable_nagle_algorithm is True
    assert handlers[socket.AF_UNIX].disable_nagle_algorithm is False


def test_unavailable_is_503(memory_server: ApiServer) -> None:
    wire = Wire(memory_server, "unix")
    memory_server.set_available(False)
    reply = wire.get("/fleet/v1/units")
    assert reply.status == 503 and reply.error == (503, "fleet server unable to communicate with etcd")
    memory_server.set_available(True)
    assert wire.get("/fleet/v1/units").status == 200


def test_registry_failure_is_500_and_logged(memory_server: ApiServer, caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> list[object]:
        raise RuntimeError("etcd exploded")

    memory_server.router.registry.units = boom  # type: ignore[method-assign,assignment]
    reply = Wire(memory_server, "tcp").get("/fleet/v1/units")
    assert reply.status == 500 and reply.error == (500, "")
    assert "etcd exploded" in caplog.text


def test_run_until_stop(memory_registry: Registry, socket_dir: str) -> None:
    stop = threading.Event()
    server = ApiServer(memory_registry, socket_path=f"{socket_dir}/run.sock", tcp="127.0.0.1:0")
    thread = threading.Thread(target=server.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 5
    while server.tcp_address is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Wire(server, "tcp").get("/fleet/v1/machines").status == 200
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and not os.path.exists(f"{socket_dir}/run.sock")


def test_serves_inherited_sockets(memory_registry: Registry, socket_dir: str) -> None:
    """Listening sockets handed over by systemd (LISTEN_FDS) are served as they are."""
    inherited = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    inherited.bind(("127.0.0.1", 0))
    inherited.listen()
    port = inherited.getsockname()[1]
    with ApiServer(memory_registry, socket_path=None, sockets=[inherited]) as server:
        assert server.addresses == [f"http://127.0.0.1:{port}"]
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/fleet/v1/units")
        assert conn.getresponse().status == 200
        conn.close()
    assert systemd_sockets({"LISTEN_PID": "1", "LISTEN_FDS": "1"}) == []  # not ours
    assert systemd_sockets({}) == []
