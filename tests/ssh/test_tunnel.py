"""The registry transport of ``--tunnel``: a real etcd reached through a real sshd (both on loopback)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from fleetpy.client.config import ClientConfig
from fleetpy.errors import RegistryUnavailable, TunnelError
from fleetpy.model.records import MachineState
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from fleetpy.ssh.tunnel import Tunnel, open_tunnel, parse_tunnel, ssh_config_for, transport_factory
from fleetpy.testing import EtcdServer

from .conftest import SSHServer


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param("10.0.0.1", ("10.0.0.1", 22), id="default-port-22"),
    pytest.param("node1:2222", ("node1", 2222), id="host-port"),
    pytest.param("[::1]:2200", ("::1", 2200), id="ipv6-port"),
    pytest.param("[::1]", ("::1", 22), id="ipv6-bracketed"),
    pytest.param("::1", ("::1", 22), id="ipv6-bare"),
])
def test_parse_tunnel(spec: str, expected: tuple[str, int]) -> None:
    assert parse_tunnel(spec) == expected


@pytest.mark.parametrize("spec", ["", ":22", "host:", "host:ssh", "host:70000", "[::1]x"])
def test_parse_tunnel_rejects(spec: str) -> None:
    with pytest.raises(TunnelError):
        parse_tunnel(spec)


@pytest.fixture
def tunnel(sshd: SSHServer, etcd_server: EtcdServer) -> Iterator[Tunnel]:
    with open_tunnel(f"127.0.0.1:{sshd.port}", sshd.config(), endpoints=[etcd_server.url]) as tun:
        yield tun


def test_store_through_tunnel(tunnel: Tunnel, etcd_server: EtcdServer, etcd_prefix: str,
                              etcd_store: EtcdStore) -> None:
    store = EtcdStore(etcd_server.url, timeout=3.0)
    tunnel.attach(store)
    try:
        store.set(etcd_prefix + "a", "1")
        store.set(etcd_prefix + "b/c", "2", ttl=60)
        assert store.get(etcd_prefix + "a").value == "1"  # type: ignore[union-attr]
        assert [n.key for n in store.list(etcd_prefix.rstrip("/")).nodes] == [etcd_prefix + "a", etcd_prefix + "b/c"]
        store.delete(etcd_prefix + "a")
        assert store.get(etcd_prefix + "a") is None
        assert etcd_store.get(etcd_prefix + "b/c").value == "2"  # type: ignore[union-attr]  # direct view agrees
        assert tunnel.dials >= 1
    finally:
        store.close()


def test_one_connection_carries_many_requests(tunnel: Tunnel, etcd_server: EtcdServer, etcd_prefix: str) -> None:
    store = EtcdStore(etcd_server.url, timeout=3.0)
    tunnel.attach(store)
    try:
        for i in range(50):
            store.set(f"{etcd_prefix}k{i}", str(i))
        assert len(store.list(etcd_prefix.rstrip("/")).nodes) == 50
        assert tunnel.dials == 1  # HTTP keep-alive over one channel of one SSH connection
    finally:
        store.close()


def test_watch_through_tunnel(tunnel: Tunnel, etcd_server: EtcdServer, etcd_prefix: str,
                              etcd_store: EtcdStore) -> None:
    store = EtcdStore(etcd_server.url, timeout=3.0)
    tunnel.attach(store)
    try:
        index = store.current_index()
        etcd_store.set(etcd_prefix + "w", "x")
        event = store.watch(etcd_prefix.rstrip("/"), after_index=index, timeout=5.0)
        assert event is not None and event.node.value == "x"
    finally:
        store.close()


def test_registry_through_url_rewriting_transport(sshd: SSHServer, etcd_server: EtcdServer,
                                                  etcd_prefix: str) -> None:
    """The ``endpoints()`` form (loopback port forwarded through the tunnel) for callers that only rewrite URLs."""
    config = ClientConfig(endpoint=etcd_server.url, tunnel=f"127.0.0.1:{sshd.port}", ssh_username="root",
                          known_hosts_file=str(sshd.known_hosts_file()), ssh_timeout=5.0)
    with open_tunnel(config.tunnel, sshd.config(),
                     endpoints=config.endpoints) as tun:
        urls = tun.endpoints(config.endpoints)
        assert urls[0].startswith("http://127.0.0.1:") and urls[0] != etcd_server.url
        store = EtcdStore(urls, timeout=3.0)
        try:
            registry = Registry(store, etcd_prefix)
            registry.create_machine_state(MachineState("m1", public_ip="10.1.1.1"), ttl=60)
            assert [m.public_ip for m in registry.machines()] == ["10.1.1.1"]
        finally:
            store.close()


def test_transport_factory_from_client_config(sshd: SSHServer, etcd_server: EtcdServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETCTL_SSH_IDENTITY", str(sshd.client_key))
    config = ClientConfig(endpoint=etcd_server.url, tunnel=f"127.0.0.1:{sshd.port}", ssh_username="root",
                          known_hosts_file=str(sshd.known_hosts_file()), ssh_timeout=5.0)
    ssh = ssh_config_for(config)
    assert (ssh.user, ssh.timeout, ssh.identity, ssh.known_hosts.strict) == ("root", 5.0, str(sshd.client_key), True)
    with transport_factory(config) as tun:
        assert (tun.host, tun.port) == ("127.0.0.1", sshd.port)


def test_tunnel_host_cannot_reach_etcd(sshd: SSHServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(TunnelError) as err:
        open_tunnel(f"127.0.0.1:{sshd.port}", sshd.config(), endpoints=[dead])
    assert str(err.value) == f"tunnel host 127.0.0.1:{sshd.port} cannot reach etcd ({dead}: Connect failed)"


def test_request_after_etcd_becomes_unreachable(tunnel: Tunnel) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    store = EtcdStore(dead, timeout=2.0)
    tunnel.attach(store)
    try:
        start = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            store.get("/x")
        assert time.monotonic() - start < 2
    finally:
        store.close()


def test_closed_tunnel_fails_requests_cleanly(sshd: SSHServer, etcd_server: EtcdServer) -> None:
    tun = open_tunnel(f"127.0.0.1:{sshd.port}", sshd.config(), endpoints=[etcd_server.url])
    store = EtcdStore(etcd_server.url, timeout=2.0)
    tun.attach(store)
    tun.close()
    try:
        with pytest.raises(RegistryUnavailable):
            store.get("/x")
    finally:
        store.close()


def test_a_bridge_whose_transport_died_still_closes_its_socket() -> None:
    """paramiko's Channel.close raises EOFError once the transport is gone: the bridge's end of the socketpair
    must be closed anyway (a leak surfaced as a ResourceWarning in a later test) and the thread end quietly."""
    from fleetpy.ssh.tunnel import _Bridge

    class DeadChannel:
        closed = True

        def get_id(self) -> int:
            return 7

        def recv_ready(self) -> bool:
            return False

        def fileno(self) -> int:
            return ours.fileno()  # something select() accepts

        def close(self) -> None:
            raise EOFError

    ours, theirs = socket.socketpair()
    done: list[object] = []
    bridge = _Bridge(ours, DeadChannel(), done.append)  # type: ignore[arg-type]
    bridge.run()  # in this thread: an exception would fail the test
    assert ours.fileno() == -1 and done == [bridge]
    theirs.close()
