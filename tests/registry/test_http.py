"""LeanPool, python-etcd's lean transport: framing (content-length, chunked, close-delimited, 100 Continue),
connection reuse and its limits, and failures raised as the urllib3 exceptions python-etcd and EtcdStore map.
The store contract suite runs every EtcdStore operation through it against a real etcd."""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError, ReadTimeoutError

from fleetpy.errors import RegistryUnavailable
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.http import LeanPool, stream_lines

Answer = Callable[[bytes], list[bytes] | None]  # request bytes -> chunks to send (None: close without answering)
Lean = Callable[..., LeanPool]


class Server:
    """A loopback HTTP server that answers each request with the chunks ``answer`` returns."""

    def __init__(self, answer: Answer, *, close_after: bool = False, host: str = "127.0.0.1") -> None:
        self.answer = answer
        self.close_after = close_after
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.create_server((host, 0), family=family)
        self.host = f"[{host}]" if ":" in host else host
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.closed = threading.Semaphore(0)  # released each time the server has closed a connection
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._converse(conn)
        finally:
            conn.close()
            self.closed.release()

    def _converse(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(buffer) < length:
                buffer += conn.recv(65536)
            request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
            self.requests.append(request)
            chunks = self.answer(request)
            if chunks is None:
                return
            for chunk in chunks:
                conn.sendall(chunk)
            if self.close_after:
                return

    def close(self) -> None:
        self.listener.close()


Serve = Callable[..., Server]


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(answer: Answer, **kw: Any) -> Server:
        servers.append(Server(answer, **kw))
        return servers[-1]
    yield make
    for server in servers:
        server.close()


@pytest.fixture
def lean() -> Iterator[Callable[..., LeanPool]]:
    pools: list[LeanPool] = []

    def make(**kw: object) -> LeanPool:
        pools.append(LeanPool(**kw))  # type: ignore[arg-type]
        return pools[-1]
    yield make
    for pool in pools:
        pool.clear()


def ok(body: bytes, *extra: bytes) -> list[bytes]:
    return [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Index: 7\r\n" + b"".join(extra)
            + b"Content-Length: %d\r\n\r\n" % len(body) + body]


def test_get_with_fields_in_the_query_and_headers_any_case(serve: Serve, lean: Lean) -> None:
    server = serve(lambda _req: ok(b'{"a": 1}'))
    pool = lean(timeout=2)
    response = pool.request("GET", server.url + "/v2/keys/x", fields={"recursive": "true", "quorum": "true"})
    assert response.status == 200 and response.data == b'{"a": 1}'
    assert response.getheader("X-ETCD-INDEX") == "7" and response.getheaders().get("x-etcd-index") == "7"
    assert server.requests[0].startswith(b"GET /v2/keys/x?recursive=true&quorum=true HTTP/1.1\r\n")


def test_put_sends_a_form_body_and_connections_are_reused(serve: Serve, lean: Lean) -> None:
    server = serve(lambda _req: ok(b"{}"))
    pool = lean(timeout=2)
    for value in ("a b", "c&d"):
        assert pool.request_encode_body("PUT", server.url + "/v2/keys/k", fields={"value": value},
                                        encode_multipart=False).status == 200
    assert server.connections == 1
    assert b"Content-Type: application/x-www-form-urlencoded" in server.requests[0]
    assert server.requests[0].endswith(b"\r\n\r\nvalue=a+b") and server.requests[1].endswith(b"value=c%26d")


def test_chunked_and_interim_100_and_close_delimited_bodies(serve: Serve, lean: Lean) -> None:
    chunked = [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
               b"4\r\n{\"a\"\r\n", b"3;x=y\r\n:1}\r\n0\r\n\r\n"]
    server = serve(lambda _req: chunked)
    pool = lean(timeout=2)
    assert pool.request("GET", server.url + "/").data == b'{"a":1}'
    assert pool.request("GET", server.url + "/").data == b'{"a":1}'
    assert server.connections == 1
    closing = serve(lambda _req: [b"HTTP/1.0 200 OK\r\n\r\nall of it"], close_after=True)
    assert pool.request("GET", closing.url + "/").data == b"all of it"  # HTTP/1.0: never reused
    assert pool.request("GET", closing.url + "/").data == b"all of it"
    assert closing.connections == 2


def test_a_connection_the_server_closed_is_not_reused(serve: Serve, lean: Lean) -> None:
    server = serve(lambda _req: ok(b"{}"), close_after=True)  # keep-alive promised, then closed anyway
    pool = lean(timeout=2)
    for _ in range(3):
        assert pool.request("GET", server.url + "/").status == 200
        assert server.closed.acquire(timeout=5)  # closed before the next request is sent (no race)
    assert server.connections == 3


def test_failures_are_urllib3_exceptions(serve: Serve, lean: Lean) -> None:
    pool = lean(timeout=0.3)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens
    with pytest.raises(NewConnectionError):
        pool.request("GET", f"http://127.0.0.1:{port}/")
    silent = serve(lambda _req: [])
    with pytest.raises(ReadTimeoutError):
        pool.request("GET", silent.url + "/")
    hangs_up = serve(lambda _req: None)
    with pytest.raises(ProtocolError):
        pool.request("PUT", hangs_up.url + "/", body="x")
    garbage = serve(lambda _req: [b"NOT HTTP\r\n\r\n"])
    with pytest.raises(HTTPError):
        pool.request("GET", garbage.url + "/")
    with pytest.raises(ValueError, match="plain http"):
        pool.request("GET", "https://127.0.0.1:1/")


def test_timeouts_follow_urllib3_and_python_etcd(serve: Serve, lean: Lean) -> None:
    slow = serve(lambda _req: [])
    pool = lean(timeout=urllib3.Timeout(connect=1, read=5))
    with pytest.raises(ReadTimeoutError):
        pool.request("GET", slow.url + "/", timeout=urllib3.Timeout(connect=1, read=0.2))
    with pytest.raises(ReadTimeoutError):
        pool.request("GET", slow.url + "/", timeout=0.2)
    assert pool._timeouts(None) == (1.0, None)  # python-etcd's None: a watch that waits as long as it takes


def test_etcd_store_reports_a_refused_endpoint_in_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = EtcdStore(f"http://127.0.0.1:{port}", timeout=0.5)
    try:
        assert isinstance(store._clients[0].http, LeanPool)
        with pytest.raises(RegistryUnavailable, match="connection refused"):
            store.get("/x")
    finally:
        store.close()


def test_a_watch_stream_whose_head_comes_later_than_its_quiet_still_streams(serve: Serve) -> None:
    # a busy etcd can take longer to answer a stream's head than the quiet that ends the stream: only the body's
    # reads are bounded by the quiet (the head has the request timeout)
    event = b'{"action":"set","node":{"key":"/t/a","value":"1","modifiedIndex":5,"createdIndex":5}}\n'

    def answer(_request: bytes) -> list[bytes]:
        time.sleep(0.4)
        return [b"HTTP/1.1 200 OK\r\nX-Etcd-Index: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"%x\r\n%s\r\n" % (len(event), event)]  # then silence: the quiet ends the stream
    server = serve(answer)
    store = EtcdStore(server.url, timeout=3)
    try:
        started = time.monotonic()
        stream = store.stream("/t", timeout=0.2)
        events = list(stream)
        assert stream.opened == 4 and stream.quiet
        assert [(e.node.key, e.node.value) for e in events] == [("/t/a", "1")]
        assert time.monotonic() - started < 2.5  # ended by the 0.2 s quiet, not by the 3 s request timeout
    finally:
        store.close()


def test_a_watch_stream_the_server_ends_is_not_quiet(serve: Serve) -> None:
    # a stream the store ends (not quiet): the reader opens another at once
    event = b'{"action":"set","node":{"key":"/t/a","value":"1","modifiedIndex":8,"createdIndex":8}}\n'
    server = serve(lambda _request: [b"HTTP/1.1 200 OK\r\nX-Etcd-Index: 7\r\nTransfer-Encoding: chunked\r\n\r\n",
                                     b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event)])
    store = EtcdStore(server.url, timeout=3)
    try:
        stream = store.stream("/t", timeout=2)
        assert [e.node.modified_index for e in stream] == [8]
        assert stream.opened == 7 and not stream.quiet
    finally:
        store.close()


def test_connections_are_reused_in_a_process_with_many_descriptors(serve: Serve, lean: Lean) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the descriptor limit ({hard}) is too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # the pool's sockets get numbers past 1024
    try:
        server = serve(lambda _req: ok(b"{}"))
        pool = lean(timeout=2)
        for _ in range(3):
            assert pool.request("GET", server.url + "/").status == 200
        assert server.connections == 1
    finally:
        for fd in spare:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_ipv6_endpoint_gets_a_bracketed_host_header(serve: Serve, lean: Lean) -> None:
    try:
        server = serve(lambda _req: ok(b"{}"), host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert lean(timeout=2).request("GET", server.url + "/v2/keys/").status == 200
    assert f"\r\nHost: [::1]:{server.port}\r\n".encode() in server.requests[0]


def _reads(*parts: bytes) -> Callable[[int], bytes]:
    """``read`` handing out ``parts`` one per call, then b"" (the connection closed)."""
    queue = list(parts)
    return lambda _n: queue.pop(0) if queue else b""


def test_stream_lines_takes_lines_across_and_within_chunks_and_ends_at_the_last_chunk() -> None:
    reads = _reads(b"5\r\nab\ncd\r", b"\n4\r\nef\n\n\r\n3\r\ngh\n\r\n", b"0\r\n\r\n", b"never read")
    assert list(stream_lines(reads, burst=0)) == [b"ab", b"cdef", b"gh"]


def test_stream_lines_raises_when_the_connection_closes_or_the_framing_is_wrong() -> None:
    with pytest.raises(ValueError, match="closed"):
        list(stream_lines(_reads(b"3\r\nab\n\r\n"), burst=0))
    with pytest.raises(ValueError):
        list(stream_lines(_reads(b"zz\r\nab\n\r\n"), burst=0))


def test_stream_lines_spaces_out_reads_only_while_data_keeps_coming() -> None:
    now = [0.0]
    slept: list[float] = []
    queue = [(5.0, b"2\r\na\n\r\n"), (5.001, b"2\r\nb\n\r\n"), (5.002, b"2\r\nc\n\r\n"), (5.003, b"0\r\n\r\n")]

    def read(_n: int) -> bytes:  # each read returns when its data is there: the first after 5 s of silence
        at, data = queue.pop(0)
        now[0] = max(now[0], at)
        return data

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    lines = list(stream_lines(read, burst=0.05, coalesce=0.01, clock=lambda: now[0], sleep=sleep))
    assert lines == [b"a", b"b", b"c"]
    # the first read waited 5 s, the second started 5 s after the first: not held; the third started right after
    # the second (not held: a unit's few events come so), the fourth right after the third: held
    assert slept == [0.01]
