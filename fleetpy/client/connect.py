"""Build the client from a ``ClientConfig``: the etcd store (endpoints, key prefix, timeout, TLS) and the registry,
or fleet's HTTP API with ``--driver=api``.

Adapter wiring, the client's composition root: the only place that names ``EtcdStore`` and ``HttpRegistry``. The
``transport`` seam is where the SSH tunnel (``--tunnel``) plugs in: a ``Transport`` maps each endpoint to a URL
reachable from here (a local port forwarded through the bastion) and is closed with the client. Commands never
know about it.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from fleetpy.client.api import FleetClient
from fleetpy.client.config import API_SOCKET, DEFAULT_ENDPOINT, ClientConfig, Driver
from fleetpy.errors import TunnelError
from fleetpy.registry.registry import Registry

if TYPE_CHECKING:
    from fleetpy.registry.etcd import EtcdStore


class Transport(Protocol):
    """Carries the client's etcd traffic (the SSH tunnel of ``--tunnel``)."""

    def attach(self, store: EtcdStore) -> None:
        """Route every connection of ``store`` through the transport (URLs unchanged, so TLS checks etcd's own
        name and no local port is opened)."""
        ...

    def dial(self, host: str, port: int, *, timeout: float | None = None) -> socket.socket:
        """A connected socket to ``host:port`` as seen from the far end (the API driver over http(s))."""
        ...

    def relay(self, command: str) -> socket.socket:
        """A socket to the stdin/stdout of ``command`` run at the far end (``fleetpy fd-forward SOCKET``)."""
        ...

    def close(self) -> None:
        ...


TransportFactory = Callable[[ClientConfig], Transport]
"""Opens the transport for a config (given ``--tunnel``, ``--ssh-username``, ``--ssh-timeout``, known hosts...)."""


def _open_transport(config: ClientConfig, transport_factory: TransportFactory | None) -> Transport:
    if transport_factory is None:
        raise TunnelError(f"--tunnel {config.tunnel_address}: the SSH tunnel transport is not available")
    return transport_factory(config)


def _api_client(config: ClientConfig, transport_factory: TransportFactory | None) -> FleetClient:
    """``--driver=api``: fleet's HTTP API (default ``unix:///var/run/fleet.sock``; like fleetctl, only the first
    of several endpoints is used). With ``--tunnel``, an ``http(s)`` endpoint is dialled from the tunnel host
    (direct-tcpip), and a unix socket is reached as fleetctl does: ``fleetpy fd-forward SOCKET`` run there."""
    from fleetpy.client.http import HttpRegistry, parse_endpoint  # lazily: each driver imports its own client

    endpoint = API_SOCKET if config.endpoint == DEFAULT_ENDPOINT or not config.endpoints else config.endpoints[0]
    transport: Transport | None = None
    dial: Callable[[float | None], socket.socket] | None = None
    if config.tunnel:
        scheme, host, port, _path = parse_endpoint(endpoint)
        transport = _open_transport(config, transport_factory)
        tunnel = transport
        if scheme == "unix":
            command = f"{shlex.quote(config.remote_fleetpy)} fd-forward {shlex.quote(host)}"

            def dial(timeout: float | None) -> socket.socket:
                return tunnel.relay(command)
        else:
            def dial(timeout: float | None) -> socket.socket:
                return tunnel.dial(host, port, timeout=timeout)
    try:
        registry = HttpRegistry(endpoint, timeout=config.request_timeout, ca_file=config.ca_file,
                                cert_file=config.cert_file, key_file=config.key_file, dial=dial)
    except BaseException:
        if transport is not None:
            transport.close()
        raise
    return FleetClient(registry, closers=[registry.close] + ([transport.close] if transport is not None else []))


def connect(config: ClientConfig, *, transport_factory: TransportFactory | None = None) -> FleetClient:
    """A ready client over etcd (``--driver=etcd``) or fleet's HTTP API (``--driver=api``). Raises UsageError or
    RegistryError for malformed endpoints, TunnelError when the tunnel cannot be opened. Nothing is sent to the
    cluster until the first request (the tunnel, if any, is connected here)."""
    if config.driver is Driver.API:
        return _api_client(config, transport_factory)
    from fleetpy.registry.etcd import EtcdStore  # lazily: python-etcd is ~70 ms of the CLI's start-up

    transport: Transport | None = None
    if config.tunnel:
        transport = _open_transport(config, transport_factory)
    try:
        # quorum reads: with its etcd cluster down to a minority, a member would answer from a stale copy and
        # list-units would print it and exit 0; through raft the outage is reported (one line, exit 1)
        store = EtcdStore(list(config.endpoints), timeout=config.request_timeout, tls=config.tls, quorum=True)
        if transport is not None:
            transport.attach(store)
    except BaseException:
        if transport is not None:
            transport.close()
        raise
    return FleetClient(Registry(store, config.etcd_key_prefix), closers=[store.close] + (
        [transport.close] if transport is not None else []))
