"""Fixtures for the SSH tests: a real OpenSSH sshd on a free loopback port, started and stopped by the tests.

sshd needs root and its privilege-separation directory /run/sshd: it is created when missing and removed
afterwards only if these fixtures created it. Keys, authorized_keys and known_hosts live in a temp directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from fleetpy.ssh.client import SSHConfig
from fleetpy.ssh.known_hosts import KnownHosts
from fleetpy.testing.etcd_server import free_port

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


FAKE_TOOLS = {
    # Stand-ins for systemd's tools (systemd is not PID 1 on a test machine): they print how they were called.
    "systemctl": 'printf "systemctl"; printf " <%s>" "$@"; printf "\\n"\n'
                 'case "$*" in *failing*) exit 3;; esac\n',
    "journalctl": 'printf "journalctl"; printf " <%s>" "$@"; printf "\\n"\n'
                  'for a in "$@"; do [ "$a" = -f ] && while true; do echo tick; sleep 0.1; done; done; exit 0\n',
    "sudo": 'printf "sudo "; exec "$@"\n',
}


def make_fake_tools(directory: Path) -> Path:
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in FAKE_TOOLS.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)
    return bin_dir


@dataclass
class SSHServer:
    dir: Path
    port: int
    host_key: Path
    client_key: Path
    proc: subprocess.Popen[bytes]
    bin_dir: Path

    host = "127.0.0.1"

    def host_public_key(self) -> paramiko.PKey:
        return paramiko.PKey.from_path(str(self.host_key))

    def known_hosts_file(self, name: str = "known_hosts") -> Path:
        """A known_hosts file (in a fresh temp dir) that trusts this server."""
        path = Path(tempfile.mkdtemp(prefix="fleetpy-kh-", dir=self.dir)) / name
        key = self.host_public_key()
        path.write_text(f"[{self.host}]:{self.port} {key.get_name()} {key.get_base64()}\n")
        return path

    def config(self, **kw: object) -> SSHConfig:
        """An SSHConfig that logs in as root with the test key and trusts this server."""
        values: dict[str, object] = {
            "user": "root", "timeout": 5.0, "identity": str(self.client_key), "use_agent": False, "key_files": (),
            "known_hosts": KnownHosts(self.known_hosts_file()),
        }
        values.update(kw)
        return SSHConfig(**values)  # type: ignore[arg-type]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetpy-test", "-f", str(path)],
                   check=True)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.settimeout(2)
                if sock.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sshd did not come up")


@pytest.fixture(scope="session")
def sshd() -> Iterator[SSHServer]:
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        if os.environ.get("CI"):
            pytest.fail("openssh-server missing in CI: apt-get install openssh-server")
        pytest.skip("openssh-server not installed")
    if os.geteuid() != 0:
        pytest.skip("sshd tests need root")
    made_privsep = not PRIVSEP_DIR.exists()
    if made_privsep:
        PRIVSEP_DIR.mkdir(mode=0o755)
    root = Path(tempfile.mkdtemp(prefix="fleetpy-sshd-"))
    host_key, client_key = root / "ssh_host_ed25519_key", root / "id_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    (root / "authorized_keys").write_text((root / "id_ed25519.pub").read_text())
    bin_dir = make_fake_tools(root)
    (root / "sshd_config").write_text(
        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nStrictModes no\nUsePAM no\nAllowTcpForwarding yes\n"
        "AllowAgentForwarding yes\nPidFile none\nPrintMotd no\nMaxStartups 100\n"
        f"SetEnv PATH={bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
    port = free_port()
    with open(root / "sshd.log", "wb") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config"), "-h", str(host_key),
                                 "-o", "ListenAddress=127.0.0.1", "-p", str(port)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait_port(port, proc)
        yield SSHServer(root, port, host_key, client_key, proc, bin_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
        if made_privsep:
            shutil.rmtree(PRIVSEP_DIR, ignore_errors=True)
