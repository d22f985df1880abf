"""``HttpRegistry`` over ``https://`` with ca/cert/key files, through a TLS terminator in front of the API socket.

fleetd serves no TLS itself (fleet-reference 4.6); an https endpoint means a proxy such as this one, which also
demands a client certificate, so all three files are exercised.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetpy.api.server import ApiServer
from fleetpy.client.http import HttpRegistry
from fleetpy.errors import RegistryUnavailable, UsageError
from tests.api.conftest import make_unit


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cwd = tmp_path_factory.mktemp("api-pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=fleetpy-api-ca", cwd=cwd)
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=cwd)
        (cwd / f"{name}.ext").write_text(f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=cwd)
    return cwd


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _bridge(conn: socket.socket, upstream: socket.socket) -> None:
    back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
    back.start()
    _pipe(conn, upstream)
    back.join(5)
    conn.close()
    upstream.close()


@pytest.fixture
def terminator(pki: Path, memory_server: ApiServer) -> Iterator[int]:
    """TLS on a loopback port (client certificate required) forwarding to the API's unix socket."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "server.crt"), str(pki / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                conn = context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(memory_server.socket_path))
            threading.Thread(target=_bridge, args=(conn, upstream), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    listener.close()


def test_https_with_ca_cert_and_key(pki: Path, terminator: int) -> None:
    with HttpRegistry(f"https://127.0.0.1:{terminator}", ca_file=str(pki / "ca.crt"),
                      cert_file=str(pki / "client.crt"), key_file=str(pki / "client.key")) as http_registry:
        http_registry.create_unit(make_unit())
        assert [u.name for u in http_registry.units()] == ["hello.service"]


def test_https_refuses_an_unknown_server_and_a_missing_client_cert(pki: Path, terminator: int) -> None:
    with pytest.raises(RegistryUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        HttpRegistry(f"https://127.0.0.1:{terminator}").units()  # system CAs do not know our CA
    with pytest.raises(RegistryUnavailable):
        HttpRegistry(f"https://127.0.0.1:{terminator}", ca_file=str(pki / "ca.crt")).units()


def test_unreadable_tls_files_are_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot load TLS files"):
        HttpRegistry("https://127.0.0.1:1", ca_file=str(tmp_path / "missing.crt"))
