"""``EtcdServer``: a real etcd (Debian ``etcd-server``) on free loopback ports with its own data dir.

Used by the test suite and the benchmarks; stopped by PID, data dir removed. v2 API enabled, as fleet needs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from types import TracebackType

from fleetpy.errors import FleetError
from fleetpy.registry.endpoints import TLSConfig


def etcd_binary() -> str | None:
    return shutil.which("etcd") or next((p for p in ("/usr/bin/etcd", "/usr/sbin/etcd") if os.path.exists(p)), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EtcdServer:
    def __init__(self, *, host: str = "127.0.0.1", name: str = "fleetpy-test", extra_args: list[str] | None = None
                 ) -> None:
        binary = etcd_binary()
        if binary is None:
            raise FleetError("etcd not found: apt-get install etcd-server")
        self.binary = binary
        self.host = host
        self.name = name
        self.extra_args = extra_args or []
        self.client_port = free_port(host)
        self.peer_port = free_port(host)
        self.data_dir = tempfile.mkdtemp(prefix="fleetpy-etcd-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.scheme = "https" if any(a.startswith("--cert-file") for a in self.extra_args) else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    def start(self, timeout: float = 15.0, tls: TLSConfig | None = None) -> EtcdServer:
        if self.proc is not None and self.proc.poll() is None:
            return self  # already running (``with EtcdServer().start()`` must not leave a second process behind)
        peer = f"http://{self.host}:{self.peer_port}"
        args = [
            self.binary, "--name", self.name, "--data-dir", self.data_dir,
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}", "--enable-v2=true", "--log-level", "error",
            *self.extra_args,
        ]
        log = open(os.path.join(self.data_dir, "etcd.log"), "wb")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FleetError(f"etcd exited early: {self.log_tail()}")
            if self._healthy(tls):
                return self
            time.sleep(0.05)
        self.stop()
        raise FleetError("etcd did not become healthy in time")

    def _healthy(self, tls: TLSConfig | None) -> bool:
        context = None
        if self.scheme == "https":
            context = ssl.create_default_context(cafile=tls.ca_file if tls and tls.ca_file else None)
            if tls and tls.cert_file:
                context.load_cert_chain(tls.cert_file, tls.key_file or None)
        try:
            with urllib.request.urlopen(f"{self.url}/v2/keys/", timeout=0.5, context=context) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.data_dir, "etcd.log"), encoding="utf-8", errors="replace") as f:
                return f.read()[-500:]
        except OSError:
            return ""

    def pause(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.cleanup()
