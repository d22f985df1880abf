"""etcd over TLS with client certificates: a CA made by the test, a refused connection without a valid client
certificate, and the registry working with one."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetpy.errors import RegistryError
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.endpoints import TLSConfig
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from fleetpy.testing import EtcdServer, etcd_binary

pytestmark = pytest.mark.etcd


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(cwd: Path, name: str, *, server: bool) -> None:
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", cwd=cwd)
    ext = cwd / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    ext.write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name, cwd=cwd)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cwd = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=fleetpy-test-ca", cwd=cwd)
    _issue(cwd, "server", server=True)
    _issue(cwd, "client", server=False)
    # a client certificate signed by another CA: must be refused
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out", "rogue.crt",
             "-days", "2", "-subj", "/CN=rogue", cwd=cwd)
    return cwd


@pytest.fixture(scope="module")
def tls_etcd(pki: Path) -> Iterator[EtcdServer]:
    if etcd_binary() is None:
        pytest.skip("etcd not installed")
    server = EtcdServer(name="fleetpy-tls", extra_args=[
        f"--cert-file={pki / 'server.crt'}", f"--key-file={pki / 'server.key'}",
        "--client-cert-auth", f"--trusted-ca-file={pki / 'ca.crt'}"])
    server.start(tls=TLSConfig(str(pki / "ca.crt"), str(pki / "client.crt"), str(pki / "client.key")))
    yield server
    server.cleanup()


def test_registry_works_over_tls_with_a_client_certificate(tls_etcd: EtcdServer, pki: Path) -> None:
    tls = TLSConfig(str(pki / "ca.crt"), str(pki / "client.crt"), str(pki / "client.key"))
    registry = Registry(EtcdStore(tls_etcd.url, timeout=3, tls=tls), "/tls-test/")
    body = UnitFile.parse("[Service]\nExecStart=/bin/true\n")
    registry.create_unit(Unit("hello.service", body, JobState.LOADED))
    registry.create_units([Unit(f"many@{i}.service", body, JobState.LAUNCHED) for i in range(20)])  # set_many
    assert [u.name for u in registry.units()] == ["hello.service", *sorted(f"many@{i}.service" for i in range(20))]
    assert registry.unit("many@7.service").target_state is JobState.LAUNCHED  # type: ignore[union-attr]
    registry.schedule_unit("many@0.service", "m0")
    assert list(registry.schedule_units([(f"many@{i}.service", "m1") for i in range(3)])) == [False, True, True]


@pytest.mark.parametrize(
    "client",
    [pytest.param(None, id="no-client-cert"), pytest.param("rogue", id="cert-from-another-ca")],
)
def test_connection_refused_without_a_valid_client_certificate(tls_etcd: EtcdServer, pki: Path,
                                                               client: str | None) -> None:
    tls = TLSConfig(str(pki / "ca.crt"), str(pki / f"{client}.crt") if client else "",
                    str(pki / f"{client}.key") if client else "")
    store = EtcdStore(tls_etcd.url, timeout=2, tls=tls)
    with pytest.raises(RegistryError) as err:
        store.list("/tls-test")
    assert "\n" not in str(err.value)


def test_server_certificate_is_verified(tls_etcd: EtcdServer, pki: Path) -> None:
    tls = TLSConfig(str(pki / "rogue.crt"), str(pki / "client.crt"), str(pki / "client.key"))
    with pytest.raises(RegistryError, match=r"TLS|SSL|certificate|unavailable"):
        EtcdStore(tls_etcd.url, timeout=2, tls=tls).list("/tls-test")


def test_a_watch_stream_reads_its_events_over_tls(tls_etcd: EtcdServer, pki: Path) -> None:
    tls = TLSConfig(str(pki / "ca.crt"), str(pki / "client.crt"), str(pki / "client.key"))
    store = EtcdStore(tls_etcd.url, timeout=3, tls=tls)
    try:
        stream = store.stream("/tls-stream", timeout=1.0)
        for i in range(3):
            store.set(f"/tls-stream/k{i}", str(i))
        events = []
        for event in stream:
            events.append((event.node.key, event.node.value))
            if len(events) == 3:
                stream.close()
                break
        assert events == [(f"/tls-stream/k{i}", str(i)) for i in range(3)]
    finally:
        store.close()
