"""``ApiServer``: fleet's HTTP API on the standard library's ``http.server``, over a unix socket and/or TCP.

I/O component with fleetpyd's ``run(stop)`` shape. HTTP parsing is ``http.server``'s; this module only decides what
to read: a body is refused with 413 from its ``Content-Length`` alone (also in answer to ``Expect: 100-continue``),
before a byte of it is read. Every response carries ``Server: fleetd/<version>`` (fleet's header; fleet clients
never check it, and monitoring that greps for fleetd keeps working). Connections are HTTP/1.1 keep-alive with an
idle timeout; one thread per connection.
"""

from __future__ import annotations

import logging
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from fleetpy import __version__
from fleetpy.api import listeners
from fleetpy.api.errors import error_body
from fleetpy.api.messages import Request, Response
from fleetpy.api.metrics import Metrics
from fleetpy.api.port import ApiRegistry
from fleetpy.api.routes import Router

log = logging.getLogger("fleetpy.api")

DEFAULT_SOCKET = "/var/run/fleet.sock"
MAX_BODY = 1024 * 1024
IDLE_TIMEOUT = 30.0
LINGER = 2.0  # seconds spent discarding a refused body of up to twice the limit


class _App:
    """What a connection handler needs from its server (shared by all listeners of one ApiServer)."""

    def __init__(self, router: Router, *, server_header: str, max_body: int) -> None:
        self.router = router
        self.server_header = server_header
        self.max_body = max_body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    @property
    def app(self) -> _App:
        server = cast("_TCPServer | _UnixServer", self.server)
        return server.app  # set by ApiServer on every listener

    # -- http.server hooks --------------------------------------------------------------------------------
    def version_string(self) -> str:
        return self.app.server_header

    def address_string(self) -> str:
        address = self.client_address
        return str(address[0]) if isinstance(address, tuple) and address else "unix"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("HTTP %s -> %s", getattr(self, "requestline", ""), code)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, headers too long...) in fleet's JSON, connection closed."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # unparsable request line: still answer with a status line
        self._write(Response(code, error_body(code, message or "")))

    def handle_expect_100(self) -> bool:
        length = self._content_length()
        if length is None:
            return False
        if length > self.app.max_body:
            self._too_large()
            return False
        return super().handle_expect_100()

    def __getattr__(self, name: str) -> Callable[[], None]:
        if name.startswith("do_"):
            return self._dispatch  # every method reaches the router, which answers 405 with fleet's message
        raise AttributeError(name)

    # -- one request --------------------------------------------------------------------------------------
    def _content_length(self) -> int | None:
        """The declared body length; None after answering 400/411 for a malformed or chunked one."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._write(Response(411, error_body(411, "request body must have a Content-Length")))
            return None
        values = {v.strip() for v in self.headers.get_all("Content-Length") or []}
        if not values:
            return 0
        if len(values) > 1 or not next(iter(values)).isdigit():
            self.close_connection = True
            self._write(Response(400, error_body(400, "invalid Content-Length")))
            return None
        return int(next(iter(values)))

    def _too_large(self, declared: int = 0) -> None:
        """413 decided from the headers alone. A body up to twice the limit is then discarded (never stored) for
        at most LINGER seconds so that a client still sending it reads the answer instead of a reset; a bigger
        one is not read at all."""
        self.close_connection = True  # the unread body makes the connection unusable
        limit = self.app.max_body
        self._write(Response(413, error_body(413, f"request body too large (max {limit} bytes)")))
        if declared <= 2 * limit:
            self._discard(declared)

    def _discard(self, count: int) -> None:
        deadline = time.monotonic() + LINGER
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)  # the client sees the end of the answer now
            while count > 0 and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(count, 65536))
                if not chunk:
                    break
                count -= len(chunk)
        except OSError:
            pass

    def _dispatch(self) -> None:
        length = self._content_length()
        if length is None:
            return
        if length > self.app.max_body:
            self._too_large(length)
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True  # the client went away mid-body
            return
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            content_types=tuple(self.headers.get_all("Content-Type") or ()),
            body=body,
        )
        self._write(self.app.router.handle(request))

    def _write(self, response: Response) -> None:
        status = response.status
        bodiless = status < 200 or status in (204, 304)
        self.send_response(status)
        if response.content_type and not bodiless:
            self.send_header("Content-Type", response.content_type)
        if not bodiless:
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.body and not bodiless and self.command != "HEAD":
            self.wfile.write(response.body)


def _log_error(request: object, client_address: object) -> None:
    """A connection died mid-request (client gone, timeout): one debug line, no traceback on stderr."""
    log.debug("API connection error from %s", client_address or "unix", exc_info=True)


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    app: _App

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log_error(request, client_address)

    def server_bind(self) -> None:  # skip HTTPServer's getfqdn(): a reverse lookup per start is not needed
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    app: _App

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log_error(request, client_address)


def _accept_loop(server: socketserver.TCPServer, wake: socket.socket) -> None:
    """Serve ``server``'s connections (a thread each) until ``wake`` is readable. Blocked in one ``select`` all
    the while: ``serve_forever`` woke every poll interval to look for a shutdown (20 times a second per listener
    at the 50 ms that kept ``close`` quick, most of an idle fleetpyd's wake-ups)."""
    server.timeout = 0  # ``handle_request`` below: the connection is there, never wait for one
    with selectors.DefaultSelector() as selector:
        selector.register(server.socket, selectors.EVENT_READ)
        selector.register(wake, selectors.EVENT_READ)
        while True:
            ready = {key.fileobj for key, _ in selector.select()}
            if wake in ready:
                return
            server.handle_request()


def _serve_on(sock: socket.socket, app: _App, *, idle_timeout: float, name: str | None = None
              ) -> socketserver.TCPServer:
    """A server for an already listening socket (ours or systemd's); ``name`` is the unix path to report."""
    # TCP_NODELAY on TCP: a response is two writes (head, body), and Nagle holding the body until the client's
    # delayed ACK of the head cost ~40 ms per keep-alive request
    tcp = sock.family != socket.AF_UNIX
    handler = type("ApiHandler", (_Handler,), {"timeout": idle_timeout, "disable_nagle_algorithm": tcp})
    server: _TCPServer | _UnixServer
    if not tcp:
        server = _UnixServer("", handler, bind_and_activate=False)
    else:
        server = _TCPServer(sock.getsockname()[:2], handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = name if name is not None else sock.getsockname()
    server.app = app
    return server


class ApiServer:
    """fleet's API v1 over ``registry``. ``start()`` binds and serves in background threads; ``close()`` stops;
    ``run(stop)`` is both around ``stop.wait()`` (fleetpyd's component shape)."""

    def __init__(
        self,
        registry: ApiRegistry,
        *,
        socket_path: str | None = DEFAULT_SOCKET,
        tcp: str | None = None,
        token_limit: int = 100,
        version: str = __version__,
        metrics: Metrics | None = None,
        socket_mode: int = 0o660,
        socket_group: str | int | None = None,
        sockets: Sequence[socket.socket] = (),
        max_body: int = MAX_BODY,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        if socket_path is None and tcp is None and not sockets:
            raise ValueError("ApiServer needs a socket_path, a tcp address or inherited sockets")
        self.metrics = metrics if metrics is not None else Metrics()
        self._available = threading.Event()
        self._available.set()
        self.router = Router(registry, token_limit=token_limit, metrics=self.metrics,
                             available=self._available.is_set)
        self._app = _App(self.router, server_header=f"fleetd/{version}", max_body=max_body)
        self.socket_path = socket_path
        self.tcp = tcp
        self.socket_mode = socket_mode
        self.socket_group = socket_group
        self.inherited = list(sockets)
        self.idle_timeout = idle_timeout
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self._wake: tuple[socket.socket, socket.socket] | None = None  # close() writes to [1]: the loops end
        self._socket_identity: tuple[int, int] | None = None
        self.tcp_address: tuple[str, int] | None = None

    def set_available(self, available: bool) -> None:
        """False: every request gets fleet's 503 (the daemon lost etcd); True: serve the API again."""
        if available:
            self._available.set()
        else:
            self._available.clear()

    def start(self) -> None:
        if self._servers:
            return
        sockets: list[socket.socket] = list(self.inherited)
        try:
            if self.socket_path is not None:
                sockets.append(listeners.bind_unix(self.socket_path, mode=self.socket_mode,
                                                   group=self.socket_group))
                self._socket_identity = listeners.file_identity(self.socket_path)
            if self.tcp is not None:
                tcp_sock = listeners.bind_tcp(self.tcp)
                sockets.append(tcp_sock)
                host, port = tcp_sock.getsockname()[:2]
                self.tcp_address = (str(host), int(port))
        except Exception:
            for sock in sockets[len(self.inherited):]:
                sock.close()
            self._unlink_socket()
            raise
        self._wake = socket.socketpair()
        for sock in sockets:
            own_unix = sock.family == socket.AF_UNIX and sock not in self.inherited
            server = _serve_on(sock, self._app, idle_timeout=self.idle_timeout,
                               name=self.socket_path if own_unix else None)
            thread = threading.Thread(target=_accept_loop, args=(server, self._wake[0]),
                                      name=f"fleetpy-api-{len(self._threads)}", daemon=True)
            self._servers.append(server)
            self._threads.append(thread)
            thread.start()
        log.info("API serving on %s", ", ".join(self.addresses))

    @property
    def addresses(self) -> list[str]:
        out = []
        for server in self._servers:
            address = server.server_address
            if isinstance(address, tuple):
                out.append(f"http://{address[0]}:{address[1]}")
            else:
                out.append(f"unix://{address!s}")
        return out

    def close(self) -> None:
        if self._wake is not None:
            self._wake[1].send(b"x")  # every accept loop sees it, and none reads it
        for thread in self._threads:
            thread.join(timeout=5)
        for server in self._servers:
            server.server_close()
        if self._wake is not None:
            for end in self._wake:
                end.close()
            self._wake = None
        self._servers.clear()
        self._threads.clear()
        self._unlink_socket()

    def _unlink_socket(self) -> None:
        if self.socket_path is not None and self._socket_identity is not None:
            listeners.unlink_if_ours(self.socket_path, self._socket_identity)
            self._socket_identity = None

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.close()

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
