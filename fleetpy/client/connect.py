"""Build the client from a ``ClientConfig``: the etcd store (endpoints, key prefix, timeout, TLS) and the registry,
or fleet's HTTP API with ``--driver=api``.

Adapter wiring, the client's composition root: the only place that names ``EtcdStore`` and ``HttpRegistry``. The
``transport`` seam is where the SSH tunnel (``--tunnel``) plugs in: a ``Transport`` maps each endpoint to a URL
reachable from here (a local port forwarded through the bastion) and is closed with the client. Commands never
know about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from fleetpy.client.api import FleetClient
from fleetpy.client.config import API_SOCKET, DEFAULT_ENDPOINT, ClientConfig, Driver
from fleetpy.errors import TunnelError, UsageError
from fleetpy.registry.registry import Registry

if TYPE_CHECKING:
    from fleetpy.registry.etcd import EtcdStore


class Transport(Protocol):
    """Carries the client's etcd traffic (the SSH tunnel of ``--tunnel``)."""

    def endpoints(self, endpoints: Sequence[str]) -> list[str]:
        """The URLs to use instead of ``endpoints`` (same order), e.g. ``http://127.0.0.1:<forwarded port>``."""
        ...

    def attach(self, store: EtcdStore) -> None:
        """Route every connection of ``store`` through the transport (URLs unchanged, so TLS checks etcd's own
        name and no local port is opened)."""
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
    of several endpoints is used)."""
    from fleetpy.client.http import HttpRegistry  # lazily: each driver imports only its own client library

    endpoint = API_SOCKET if config.endpoint == DEFAULT_ENDPOINT or not config.endpoints else config.endpoints[0]
    transport: Transport | None = None
    if config.tunnel:
        if not endpoint.startswith(("http://", "https://")):
            raise UsageError(f"--tunnel with --driver=api needs an http(s) endpoint, not {endpoint}")
        transport = _open_transport(config, transport_factory)
        endpoint = transport.endpoints([endpoint])[0]
    try:
        registry = HttpRegistry(endpoint, timeout=config.request_timeout, ca_file=config.ca_file,
                                cert_file=config.cert_file, key_file=config.key_file)
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
