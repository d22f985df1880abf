"""``LeanPool``: a lean keep-alive HTTP/1.1 transport for python-etcd's plain-``http`` requests.

Adapter layer, under ``fleetpy.registry.etcd``. python-etcd sends every request through its client's ``http``
attribute, a urllib3 ``PoolManager``; this class has the part of that interface python-etcd uses (``request``,
``request_encode_body``, ``urlopen``, ``clear``; responses with ``status``, ``data``, ``getheader``,
``getheaders``) and raises the urllib3 exceptions python-etcd and ``EtcdStore`` map to their errors. python-etcd
stays the client: its API, its result decoding, its error classes.

Why: on this 2-core machine fleetpy is CPU-bound when it starts hundreds of units, and each etcd request cost
~0.4 ms of client CPU in urllib3 and http.client (header parsing goes through the email package). A request
here is one ``sendall`` and a few ``recv``s parsed by hand. Not handled here, and left to a urllib3
``PoolManager`` with the same settings (``streaming``): TLS endpoints, and the request of etcd's streaming watch,
whose body ``stream_lines`` reads as it comes, many events per read while they come fast.

As urllib3 does, an idle connection is checked before it is reused (closed by the server: not reused), and no
request is retried: a failed write's outcome is unknown, and ``EtcdStore`` decides what to do.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError, ReadTimeoutError

_URL_METHODS = frozenset({"GET", "DELETE", "HEAD", "OPTIONS"})  # fields go in the query string (as urllib3)
_FORM = "application/x-www-form-urlencoded"
_MAX_HEAD = 65536
_UNSET: Any = object()  # no timeout argument: the pool's timeout (None is python-etcd's "no timeout")
BURST = 0.05  # the third of three stream reads each this soon after the one before (events keep coming) first
COALESCE = 0.025  # waits this long, so that one read takes many events: each read is a wake-up and a recv, and
# every agent follows every write to the job tree. A lone event, or a unit's few, is read at once. A 1,000-unit start
# on 10 lab nodes (6 starts each, alternating): the job watch threads took 10.6-12.6% of the machine's CPU at 10 ms,
# 9.5-10.9% at 25 ms (~17 and ~40 events a read)


class LeanPool:
    """Keep-alive connections to plain-HTTP etcd endpoints, at most ``maxsize`` idle per endpoint."""

    def __init__(self, *, maxsize: int = 16, timeout: urllib3.Timeout | float | None = None,
                 **urllib3_kw: Any) -> None:
        self.maxsize = maxsize
        self.timeout = timeout
        # what a urllib3 PoolManager doing the same would be built with (``streaming``; the SSH tunnel reads it)
        self.connection_pool_kw: dict[str, Any] = {"maxsize": maxsize, "timeout": timeout, **urllib3_kw}
        self._idle: dict[tuple[str, int], list[socket.socket]] = {}
        self._lock = threading.Lock()
        self._streaming: urllib3.PoolManager | None = None

    @property
    def streaming(self) -> urllib3.PoolManager:
        """A urllib3 PoolManager with the same settings, for responses read as they come (watch streams)."""
        with self._lock:
            if self._streaming is None:
                self._streaming = urllib3.PoolManager(**self.connection_pool_kw)
            return self._streaming

    # -- urllib3's request interface ----------------------------------------------------------------------
    def request(self, method: str, url: str, fields: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, **kw: Any) -> LeanResponse:
        if method.upper() in _URL_METHODS or "body" in kw:
            if fields:
                url += ("&" if "?" in url else "?") + urlencode(fields)
            return self.urlopen(method, url, headers=headers, **kw)
        return self.request_encode_body(method, url, fields=fields, headers=headers, encode_multipart=False, **kw)

    def request_encode_body(self, method: str, url: str, fields: Mapping[str, Any] | None = None,
                            headers: Mapping[str, str] | None = None, encode_multipart: bool = True,
                            **kw: Any) -> LeanResponse:
        if encode_multipart:
            raise ValueError("LeanPool sends form-encoded bodies only (encode_multipart=False)")
        merged = {"Content-Type": _FORM, **(headers or {})}
        return self.urlopen(method, url, body=urlencode(fields or {}), headers=merged, **kw)

    def urlopen(self, method: str, url: str, body: str | bytes | None = None,
                headers: Mapping[str, str] | None = None, timeout: Any = _UNSET, **_ignored: Any) -> LeanResponse:
        """One request on a pooled connection. ``redirect``, ``preload_content`` and ``retries`` are accepted and
        ignored: etcd's v2 API does not redirect, bodies are always read whole, nothing is retried."""
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(f"LeanPool speaks plain http only, not {parts.scheme}")
        host, port = parts.hostname or "localhost", parts.port or 80
        connect_timeout, read_timeout = self._timeouts(timeout)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        data = body.encode() if isinstance(body, str) else body
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address goes in brackets
        lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if data is not None or method.upper() in ("PUT", "POST", "PATCH"):
            lines.append(f"Content-Length: {len(data or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock = self.connection(host, port, connect_timeout)
        with failures_raised(sock, url, read_timeout):
            sock.settimeout(read_timeout)
            sock.sendall(head + data if data else head)
            response, reusable = _read_response(sock, method.upper() == "HEAD")
        if reusable:
            self.release(host, port, sock)
        else:
            sock.close()
        return response

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
            streaming = self._streaming
        for socks in idle.values():
            for sock in socks:
                sock.close()
        if streaming is not None:
            streaming.clear()

    # -- connections ----------------------------------------------------------------------------------------
    def _timeouts(self, timeout: Any) -> tuple[float | None, float | None]:
        """(connect, read) timeouts: the pool's when none is given (as urllib3). python-etcd passes None for
        "wait as long as it takes" (a watch with timeout 0): the connect timeout is then the pool's, and
        reading has none."""
        if timeout is _UNSET:
            timeout = self.timeout
            if timeout is None:
                return None, None
        elif timeout is None:
            default = self.timeout
            return (_seconds(default.connect_timeout) if isinstance(default, urllib3.Timeout)
                    else _seconds(default)), None
        if isinstance(timeout, urllib3.Timeout):
            return _seconds(timeout.connect_timeout), _seconds(timeout.read_timeout)
        return _seconds(timeout), _seconds(timeout)

    def connection(self, host: str, port: int, connect_timeout: float | None) -> socket.socket:
        key = (host, port)
        while True:
            with self._lock:
                idle = self._idle.get(key)
                sock = idle.pop() if idle else None
            if sock is None:
                break
            if not _dropped(sock):
                return sock
            sock.close()
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except TimeoutError as err:
            raise ConnectTimeoutError(f"Connection to {host} timed out. (connect timeout={connect_timeout})") from err
        except OSError as err:
            raise NewConnectionError(None, f"Failed to establish a new connection: {err}") from err  # type: ignore[arg-type]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def release(self, host: str, port: int, sock: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault((host, port), [])
            if len(idle) < self.maxsize:
                idle.append(sock)
                return
        sock.close()


@contextlib.contextmanager
def failures_raised(sock: socket.socket, url: str, read_timeout: float | None) -> Iterator[None]:
    """A request on ``sock`` that fails closes it and raises what urllib3 would: ReadTimeoutError, or
    ProtocolError for a connection that broke or an answer that does not parse."""
    try:
        yield
    except TimeoutError as err:
        sock.close()
        raise ReadTimeoutError(None, url, f"Read timed out. (read timeout={read_timeout})") from err  # type: ignore[arg-type]
    except (OSError, ValueError) as err:
        sock.close()
        raise ProtocolError("Connection aborted.", err) from err


def _seconds(value: Any) -> float | None:
    """A timeout in seconds; urllib3's "default" sentinel and None are no timeout."""
    return float(value) if isinstance(value, int | float) else None


def _dropped(sock: socket.socket) -> bool:
    """An idle connection with something to read has been closed by the server (or is out of step)."""
    poller = select.poll()  # not select(): a busy process has descriptors past FD_SETSIZE (1024)
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class _Headers(dict[str, str]):
    """Response headers by lower-case name; ``get`` takes any case (python-etcd asks for ``x-etcd-index``)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


class LeanResponse:
    """What python-etcd reads of a urllib3 response."""

    def __init__(self, status: int, headers: _Headers, data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data

    def getheader(self, name: str, default: str | None = None) -> str | None:
        value = self.headers.get(name)
        return default if value is None else str(value)

    def getheaders(self) -> _Headers:
        return self.headers

    def release_conn(self) -> None:
        """The connection went back to the pool when the body had been read."""

    def close(self) -> None:
        """Nothing is left open."""


class Reader:
    """Buffered reads from a socket (a response's head, then its body)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed by etcd before the response was complete")
        self.buffer += chunk

    def until(self, marker: bytes, limit: int = _MAX_HEAD) -> bytes:
        start = 0
        while (at := self.buffer.find(marker, start)) < 0:
            if len(self.buffer) > limit:
                raise ValueError("response head too long")
            start = max(0, len(self.buffer) - len(marker) + 1)
            self.fill()
        out = bytes(self.buffer[:at])
        del self.buffer[:at + len(marker)]
        return out

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.fill()
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out

    def rest(self) -> bytes:
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                out = bytes(self.buffer)
                self.buffer.clear()
                return out
            self.buffer += chunk


def _read_response(sock: socket.socket, head_only: bool) -> tuple[LeanResponse, bool]:
    """Read one response: (response, whether the connection can carry another request)."""
    reader = Reader(sock)
    response, reusable = read_one(reader, head_only)
    if reader.buffer:  # more than one response's worth: out of step, never reuse
        reusable = False
    return response, reusable


def read_one(reader: Reader, head_only: bool) -> tuple[LeanResponse, bool]:
    """Read one response from ``reader`` (which may hold more after it: pipelined answers): (response, whether
    the connection can carry another request)."""
    while True:
        status_line, *header_lines = reader.until(b"\r\n\r\n").split(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        status = int(rest[:3])
        if status != 100:  # an interim "100 Continue" precedes the real answer
            break
    headers = _Headers()
    for line in header_lines:
        name, colon, value = line.partition(b":")
        if colon:
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    reusable = version == b"HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if head_only or status in (204, 304) or 100 <= status < 200:
        data = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while size := int(reader.until(b"\r\n").split(b";", 1)[0], 16):
            parts.append(reader.exactly(size))
            reader.exactly(2)  # the CRLF after each chunk
        while reader.until(b"\r\n"):  # trailers, up to the empty line
            pass
        data = b"".join(parts)
    elif "content-length" in headers:
        data = reader.exactly(int(headers["content-length"]))
    else:
        data, reusable = reader.rest(), False
    return LeanResponse(status, headers, data), reusable


def stream_lines(read: Callable[[int], bytes], *, burst: float = BURST, coalesce: float = COALESCE,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> Iterator[bytes]:
    """The non-empty lines of a chunked response body, as they come. ``read(n)`` returns what is there (at most
    ``n`` bytes, waiting for at least one), b"" at the end of the connection; its timeout ends the iteration by
    raising. Ends at the body's last chunk. From the third read in a row that starts within ``burst`` s of the
    one before, each first waits ``coalesce`` s."""
    body = bytearray()  # chunked framing not parsed yet
    pending = b""  # chunk data after the last newline
    last, streak = float("-inf"), 0
    while True:
        now = clock()
        streak = streak + 1 if now - last < burst else 0
        if streak >= 2:
            sleep(coalesce)
        last = now
        data = read(65536)
        if not data:
            raise ValueError("etcd closed the watch stream's connection")
        body += data
        pos, parts, ended = _unchunk(body)
        del body[:pos]
        if parts:
            *lines, pending = (pending + b"".join(parts)).split(b"\n")
            yield from (line for line in lines if line.strip())
        if ended:
            return


def _unchunk(body: bytearray) -> tuple[int, list[bytes], bool]:
    """The complete chunks at the start of ``body``: (bytes used, their data, whether the last chunk came)."""
    pos, parts = 0, list[bytes]()
    while (eol := body.find(b"\r\n", pos)) >= 0:
        size = int(bytes(body[pos:eol]).split(b";", 1)[0], 16)
        if size == 0:
            return eol + 2, parts, True
        end = eol + 2 + size
        if len(body) < end + 2:
            break
        parts.append(bytes(body[eol + 2:end]))
        pos = end + 2
    return pos, parts, False
