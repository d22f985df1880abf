"""ClientConfig validation and connect(): driver, endpoints, TLS, and the transport seam for --tunnel."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fleetpy.client.config import ClientConfig, Driver, choose_driver
from fleetpy.client.connect import connect
from fleetpy.client.http import HttpRegistry
from fleetpy.errors import RegistryError, TunnelError, UsageError
from fleetpy.registry.etcd import EtcdStore


def test_defaults_and_derived_values() -> None:
    config = ClientConfig()
    assert config.endpoints == ["http://127.0.0.1:2379", "http://127.0.0.1:4001"]
    assert config.tunnel_address == "" and not config.tls.enabled
    assert ClientConfig(tunnel="bastion").tunnel_address == "bastion:22"
    assert ClientConfig(tunnel="bastion:2222").tunnel_address == "bastion:2222"
    assert ClientConfig(tunnel="[::1]").tunnel_address == "[::1]:22"
    assert ClientConfig(ca_file="ca.pem", cert_file="c.pem", key_file="k.pem").tls.enabled


@pytest.mark.parametrize(("text", "driver"), [("etcd", Driver.ETCD), ("API", Driver.API), (" Etcd ", Driver.ETCD)])
def test_driver_parse(text: str, driver: Driver) -> None:
    assert Driver.parse(text) is driver


ETCD_DEFAULT = "http://127.0.0.1:2379,http://127.0.0.1:4001"


@pytest.mark.parametrize(("driver", "endpoint", "expected"), [
    (None, None, (Driver.API, "unix:///var/run/fleet.sock")),  # fleetctl's defaults
    ("etcd", None, (Driver.ETCD, ETCD_DEFAULT)),
    ("api", None, (Driver.API, "unix:///var/run/fleet.sock")),
    (None, "http://10.0.0.1:2379", (Driver.ETCD, "http://10.0.0.1:2379")),  # fleetctl's auto-detection
    (None, "http://a:4001,http://b:4001", (Driver.ETCD, "http://a:4001,http://b:4001")),
    (None, "http://10.0.0.1:8080", (Driver.API, "http://10.0.0.1:8080")),
    (None, "unix:///run/fleet.sock", (Driver.API, "unix:///run/fleet.sock")),
    ("api", "http://10.0.0.1:2379", (Driver.API, "http://10.0.0.1:2379")),  # an explicit driver wins
    ("", "http://10.0.0.1:2379", (Driver.ETCD, "http://10.0.0.1:2379")),  # empty = not given, as in fleetctl
    (None, "http://[bad", (Driver.API, "http://[bad")),  # the driver reports a malformed endpoint
])
def test_choose_driver(driver: str | None, endpoint: str | None, expected: tuple[Driver, str]) -> None:
    assert choose_driver(driver, endpoint) == expected


@pytest.mark.parametrize("kwargs", [{"request_timeout": 0}, {"ssh_timeout": -1}, {"key_file": "k.pem"}])
def test_invalid_configs(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        ClientConfig(**kwargs)  # type: ignore[arg-type]


def test_connect_builds_an_etcd_store_with_the_options() -> None:
    config = ClientConfig(endpoint="http://a:1,https://b:2", etcd_key_prefix="/x", request_timeout=1.5,
                          ca_file="/ca.pem")
    client = connect(config)
    store = client.registry.store  # type: ignore[attr-defined]
    assert isinstance(store, EtcdStore)
    assert store.endpoints == ["http://a:1", "https://b:2"] and store.timeout == 1.5
    assert store.tls.ca_file == "/ca.pem"
    assert client.registry.keys.prefix == "/x/"  # type: ignore[attr-defined]
    client.close()


def test_api_driver_uses_fleets_socket_by_default() -> None:
    with connect(ClientConfig(driver=Driver.API)) as client:
        assert isinstance(client.registry, HttpRegistry) and client.registry.endpoint == "unix:///var/run/fleet.sock"
    with connect(ClientConfig(driver=Driver.API, endpoint="http://a:1,http://b:2")) as client:
        assert isinstance(client.registry, HttpRegistry) and client.registry.endpoint == "http://a:1"


def test_connect_refusals() -> None:
    with pytest.raises(UsageError):  # a malformed endpoint is refused before any tunnel is opened
        connect(ClientConfig(driver=Driver.API, endpoint="unix://x.sock", tunnel="bastion"))
    with pytest.raises(TunnelError):  # no transport factory: a unix socket through --tunnel needs one
        connect(ClientConfig(driver=Driver.API, endpoint="unix:///x.sock", tunnel="bastion"))
    with pytest.raises(TunnelError):
        connect(ClientConfig(tunnel="bastion"))
    with pytest.raises(RegistryError):
        connect(ClientConfig(endpoint="unix:///var/run/fleet.sock"))


class FakeTunnel:
    def __init__(self) -> None:
        self.closed = False
        self.attached: list[object] = []

    def attach(self, store: object) -> None:
        self.attached.append(store)

    def endpoints(self, endpoints: Sequence[str]) -> list[str]:
        return [f"http://127.0.0.1:{10000 + i}" for i, _ in enumerate(endpoints)]

    def close(self) -> None:
        self.closed = True


def test_transport_seam_attaches_to_the_store_and_closes_with_the_client() -> None:
    tunnel = FakeTunnel()
    seen: list[ClientConfig] = []

    def factory(config: ClientConfig) -> FakeTunnel:
        seen.append(config)
        return tunnel

    config = ClientConfig(tunnel="bastion")
    with connect(config, transport_factory=factory) as client:
        store = client.registry.store  # type: ignore[attr-defined]
        assert store.endpoints == list(config.endpoints)  # URLs unchanged: TLS checks etcd's own name
        assert tunnel.attached == [store]
    assert seen == [config] and tunnel.closed
