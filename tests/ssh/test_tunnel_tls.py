"""TLS to etcd through ``--tunnel``: the tunnel hands urllib3 a real socket, so TLS is wrapped as usual and the
certificate is checked against the endpoint's own name (here ``localhost``), not a rewritten loopback address."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetpy.model.records import MachineState
from fleetpy.registry.endpoints import TLSConfig
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from fleetpy.ssh.tunnel import open_tunnel
from fleetpy.testing import EtcdServer
from tests.security.test_etcd_tls import pki, tls_etcd  # noqa: F401 - fixtures

from .conftest import SSHServer

pytestmark = pytest.mark.etcd


def test_registry_over_tls_through_tunnel(sshd: SSHServer, tls_etcd: EtcdServer, pki: Path) -> None:  # noqa: F811
    url = tls_etcd.url.replace("127.0.0.1", "localhost")
    tls = TLSConfig(str(pki / "ca.crt"), str(pki / "client.crt"), str(pki / "client.key"))
    with open_tunnel(f"127.0.0.1:{sshd.port}", sshd.config(), endpoints=[url]) as tunnel:
        store = EtcdStore(url, timeout=3.0, tls=tls)
        tunnel.attach(store)
        try:
            registry = Registry(store, "/tls-tunnel-test/")
            registry.create_machine_state(MachineState("m1", public_ip="10.9.9.9"), ttl=60)
            assert [m.id for m in registry.machines()] == ["m1"]
            assert tunnel.dials == 1
        finally:
            store.close()
