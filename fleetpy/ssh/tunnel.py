"""``--tunnel HOST[:PORT]``: every registry request of a command rides ONE SSH connection to HOST.

Adapter layer (transport). A ``Tunnel`` dials ``host:port`` *as seen from HOST* through a ``direct-tcpip`` channel
and hands the HTTP client a real socket: one end of a ``socketpair`` whose other end a small bridge thread copies
to and from the channel. urllib3, http.client and ssl therefore get exactly the object they expect (select/poll
liveness checks, timeouts, TLS wrapping, setsockopt all work), no loopback port is opened for other local users to
borrow, and nothing above this module knows it is tunnelled: ``pool_manager()`` builds a urllib3 PoolManager whose
connections dial through the tunnel, ``attach()`` swaps it into an ``EtcdStore``'s python-etcd clients. For callers
that can only rewrite URLs, ``endpoints()`` forwards a loopback port per endpoint instead (plain HTTP only).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import paramiko
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from fleetpy.errors import TunnelError
from fleetpy.ssh.client import DEFAULT_PORT, SSHConfig, SSHConnection, connect
from fleetpy.ssh.known_hosts import KnownHosts

_BUFFER = 65536


def parse_tunnel(spec: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6addr]`` or ``[v6addr]:port`` -> (host, port); port 22 when absent (fleetctl)."""
    spec = spec.strip()
    if not spec:
        raise TunnelError("empty --tunnel value: expected HOST[:PORT]")
    port: str | None = None
    if spec.startswith("["):  # [v6addr] or [v6addr]:port
        host, _, rest = spec[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise TunnelError(f"invalid --tunnel value {spec!r}: expected HOST[:PORT]")
        port = rest[1:] if rest else None
    elif spec.count(":") == 1:
        host, port = spec.split(":")
    else:  # a host name, or a bare IPv6 address
        host = spec
    if not host:
        raise TunnelError(f"invalid --tunnel value {spec!r}: expected HOST[:PORT]")
    if port is None:
        return host, DEFAULT_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise TunnelError(f"invalid --tunnel value {spec!r}: port must be 1-65535")
    return host, int(port)


class Tunnel:
    """A dialer through one SSH connection. Thread-safe; close it when the command ends."""

    def __init__(self, connection: SSHConnection) -> None:
        self.connection = connection
        self._bridges: set[_Bridge] = set()
        self._forwarders: list[_Forwarder] = []
        self._lock = threading.Lock()
        self.dials = 0

    @property
    def host(self) -> str:
        return self.connection.host

    @property
    def port(self) -> int:
        return self.connection.port

    def dial(self, host: str, port: int, *, timeout: float | None = None) -> socket.socket:
        """A connected socket to ``host:port`` as seen from the tunnel host (TunnelError if it cannot reach it)."""
        ours, theirs = socket.socketpair()
        try:
            self.bridge(theirs, host, port, timeout=timeout)
        except BaseException:
            ours.close()
            raise
        return ours

    def relay(self, command: str) -> socket.socket:
        """A connected socket to the stdin/stdout of ``command`` run on the tunnel host: fleetctl's way to reach
        the API's unix socket there (``fleetctl fd-forward /var/run/fleet.sock``)."""
        ours, theirs = socket.socketpair()
        try:
            chan = self.connection.exec_channel(command)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        self._start_bridge(theirs, chan)
        return ours

    def bridge(self, sock: socket.socket, host: str, port: int, *, timeout: float | None = None) -> None:
        """Connect ``sock`` (which the bridge then owns) to ``host:port`` through the tunnel."""
        try:
            chan = self.connection.open_channel(host, port, timeout=timeout)
        except BaseException:
            sock.close()
            raise
        self._start_bridge(sock, chan)

    def _start_bridge(self, sock: socket.socket, chan: paramiko.Channel) -> None:
        bridge = _Bridge(sock, chan, self._forget)
        with self._lock:
            self._bridges.add(bridge)
            self.dials += 1
        bridge.start()

    def _forget(self, bridge: _Bridge) -> None:
        with self._lock:
            self._bridges.discard(bridge)

    def check_endpoints(self, endpoints: Sequence[str]) -> None:
        """Fail fast, and say so, when the tunnel host reaches none of the etcd endpoints."""
        errors = []
        for url in endpoints:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 2379)
            try:
                self.connection.open_channel(host, port).close()
                return
            except TunnelError as err:
                errors.append(f"{url}: {str(err).rsplit(': ', 1)[-1]}")
        if errors:
            raise TunnelError(f"tunnel host {self.host}:{self.port} cannot reach etcd ({'; '.join(errors)})")

    def pool_manager(self, num_pools: int = 10, headers: dict[str, str] | None = None,
                     **connection_pool_kw: Any) -> urllib3.PoolManager:
        """A urllib3 PoolManager (same arguments) whose HTTP and HTTPS connections dial through the tunnel."""
        manager = urllib3.PoolManager(num_pools, headers, **connection_pool_kw)
        manager.pool_classes_by_scheme = _pool_classes(self)  # type: ignore[assignment]
        return manager

    def patch_clients(self, clients: Iterable[Any]) -> None:
        """Point python-etcd clients' ``.http`` at the tunnel, keeping their pool settings (timeouts, TLS)."""
        for client in clients:
            old = client.http
            kw = dict(getattr(old, "connection_pool_kw", {}))
            client.http = self.pool_manager(**kw)
            with contextlib.suppress(Exception):
                old.clear()

    def attach(self, store: Any) -> None:
        """Route every request of an ``EtcdStore`` (one python-etcd client per endpoint) through the tunnel."""
        self.patch_clients(store._clients)

    patch_store = attach

    def endpoints(self, endpoints: Sequence[str]) -> list[str]:
        """The URL-rewriting alternative to ``attach``: each endpoint becomes ``http://127.0.0.1:<port>``, a
        loopback listener forwarded through the tunnel (open while the tunnel is). TLS endpoints would fail the
        certificate's host-name check this way: use ``attach`` for them."""
        out = []
        for url in endpoints:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 2379)
            forwarder = _Forwarder(self, parts.hostname or "", port)
            with self._lock:
                self._forwarders.append(forwarder)
            forwarder.start()
            out.append(urlunsplit((parts.scheme, f"127.0.0.1:{forwarder.port}", parts.path, "", "")))
        return out

    def close(self) -> None:
        with self._lock:
            bridges, forwarders = list(self._bridges), list(self._forwarders)
        for forwarder in forwarders:
            forwarder.stop()
        for bridge in bridges:
            bridge.stop()
        self.connection.close()

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class TunnelSettings(Protocol):
    """The global options a tunnel needs (``fleetpy.client.config.ClientConfig`` has them)."""

    @property
    def tunnel(self) -> str: ...

    @property
    def endpoints(self) -> list[str]: ...

    @property
    def ssh_username(self) -> str: ...

    @property
    def ssh_timeout(self) -> float: ...

    @property
    def known_hosts_file(self) -> str: ...

    @property
    def strict_host_key_checking(self) -> bool: ...


def ssh_config_for(settings: TunnelSettings) -> SSHConfig:
    """SSHConfig from the global options; ``--ssh-identity`` (``ssh_identity``) falls back to the
    FLEETCTL_SSH_IDENTITY environment variable while the options object has no such field."""
    identity = str(getattr(settings, "ssh_identity", "") or os.environ.get("FLEETCTL_SSH_IDENTITY", ""))
    return SSHConfig(user=settings.ssh_username, timeout=settings.ssh_timeout, identity=identity,
                     known_hosts=KnownHosts(settings.known_hosts_file, strict=settings.strict_host_key_checking))


def transport_factory(settings: TunnelSettings) -> Tunnel:
    """``fleetpy.client.connect``'s TransportFactory: the tunnel of ``--tunnel``, checked against the endpoints
    when they are etcd's (the API driver's first request says whether the API is reachable)."""
    etcd = str(getattr(settings, "driver", "etcd")) == "etcd"
    return open_tunnel(settings.tunnel, ssh_config_for(settings), endpoints=settings.endpoints if etcd else ())


def open_tunnel(spec: str, config: SSHConfig, *, endpoints: Sequence[str] = ()) -> Tunnel:
    """Connect to the tunnel host ``spec`` (``HOST[:PORT]``) within ``config.timeout``; with ``endpoints``, also
    check that the host reaches at least one of them. Raises TunnelError/HostKeyError (one line)."""
    host, port = parse_tunnel(spec)
    tunnel = Tunnel(connect(host, port, config))
    if endpoints:
        try:
            tunnel.check_endpoints(endpoints)
        except BaseException:
            tunnel.close()
            raise
    return tunnel


class _Bridge(threading.Thread):
    """Copies bytes between one end of a socketpair and a channel until both directions have ended."""

    def __init__(self, sock: socket.socket, chan: paramiko.Channel, done: Any) -> None:
        super().__init__(name=f"fleetpy-tunnel-{chan.get_id()}", daemon=True)
        self.sock = sock
        self.chan = chan
        self.done = done
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        sock, chan = self.sock, self.chan
        reading = {sock: True, chan: True}
        try:
            while any(reading.values()) and not self._stop_event.is_set():
                ready, _, _ = select.select([s for s, on in reading.items() if on], [], [], 0.5)
                if sock in ready:
                    data = sock.recv(_BUFFER)
                    if data:
                        chan.sendall(data)
                    else:
                        chan.shutdown_write()
                        reading[sock] = False
                if chan in ready:
                    data = chan.recv(_BUFFER)
                    if data:
                        sock.sendall(data)
                    else:
                        sock.shutdown(socket.SHUT_WR)
                        reading[chan] = False
                if chan.closed and not chan.recv_ready():
                    break
        except (OSError, paramiko.SSHException, EOFError):
            pass
        finally:
            with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                chan.close()  # raises EOFError when the transport died first: the socket must still be closed
            sock.close()
            self.done(self)


class _Forwarder(threading.Thread):
    """A loopback listener whose every connection is bridged to ``host:port`` through the tunnel."""

    def __init__(self, tunnel: Tunnel, host: str, port: int) -> None:
        super().__init__(name=f"fleetpy-forward-{host}:{port}", daemon=True)
        self.tunnel, self.host, self.target_port = tunnel, host, port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                conn.settimeout(None)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # relay each chunk at once (no Nagle)
                with contextlib.suppress(TunnelError):  # the client sees its connection closed
                    self.tunnel.bridge(conn, self.host, self.target_port)
        except OSError:
            pass
        finally:
            self.listener.close()


def _timeout_of(conn: HTTPConnection) -> float | None:
    timeout = conn.timeout
    return float(timeout) if isinstance(timeout, int | float) else None


def _dial_for(tunnel: Tunnel, conn: HTTPConnection) -> socket.socket:
    """urllib3's ``_new_conn`` through the tunnel, failing with the exceptions urllib3 expects."""
    try:
        sock = tunnel.dial(conn._dns_host, conn.port or 80, timeout=_timeout_of(conn))
    except TunnelError as err:
        if "imeout" in str(err) or "timed out" in str(err):
            raise ConnectTimeoutError(conn, f"{err}") from err
        raise NewConnectionError(conn, f"{err}") from err
    sock.settimeout(_timeout_of(conn))
    return sock


def _pool_classes(tunnel: Tunnel) -> dict[str, type[HTTPConnectionPool]]:
    class TunnelHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return _dial_for(tunnel, self)

    class TunnelHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return _dial_for(tunnel, self)

    class TunnelHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = TunnelHTTPConnection

    class TunnelHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = TunnelHTTPSConnection

    return {"http": TunnelHTTPConnectionPool, "https": TunnelHTTPSConnectionPool}
