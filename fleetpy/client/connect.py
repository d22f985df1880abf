"""Build the client from a ``ClientConfig``: the etcd store (endpoints, key prefix, timeout, TLS) and the registry.

Adapter wiring, the client's composition root: the only place that names ``EtcdStore``. The ``transport`` seam is
where the SSH tunnel (``--tunnel``) plugs in: a ``Transport`` maps each etcd endpoint to a URL reachable from here
(a local port forwarded through the bastion) and is closed with the client. Commands never know about it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from fleetpy.client.api import FleetClient
from fleetpy.client.config import ClientConfig, Driver
from fleetpy.errors import TunnelError, UsageError
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry


class Transport(Protocol):
    """Carries the client's etcd traffic (the SSH tunnel of ``--tunnel``)."""

    def endpoints(self, endpoints: Sequence[str]) -> list[str]:
        """The URLs to use instead of ``endpoints`` (same order), e.g. ``http://127.0.0.1:<forwarded port>``."""
        ...

    def close(self) -> None:
        ...


TransportFactory = Callable[[ClientConfig], Transport]
"""Opens the transport for a config (given ``--tunnel``, ``--ssh-username``, ``--ssh-timeout``, known hosts...)."""


def connect(config: ClientConfig, *, transport_factory: TransportFactory | None = None) -> FleetClient:
    """A ready client. Raises UsageError for an unsupported driver or a tunnel without a transport, and
    RegistryError for malformed endpoints. Nothing is sent to etcd until the first request."""
    if config.driver is Driver.API:
        raise UsageError("the fleet HTTP API driver is not yet supported: use --driver=etcd")
    transport: Transport | None = None
    endpoints: Sequence[str] = config.endpoints
    if config.tunnel:
        if transport_factory is None:
            raise TunnelError(f"--tunnel {config.tunnel_address}: the SSH tunnel transport is not available yet")
        transport = transport_factory(config)
        endpoints = transport.endpoints(endpoints)
    try:
        store = EtcdStore(list(endpoints), timeout=config.request_timeout, tls=config.tls)
    except BaseException:
        if transport is not None:
            transport.close()
        raise
    return FleetClient(Registry(store, config.etcd_key_prefix), closers=[store.close] + (
        [transport.close] if transport is not None else []))
