"""SSH into lab nodes: the lab key pair, per-node host keys, sshd as a transient unit, known_hosts.

I/O (``ssh-keygen``, files in ``<lab>/ssh`` and ``<lab>/nodes/<node>``); ``sshd_config_text`` and
``known_hosts_line`` are pure. Nothing is written to the host's /etc: sshd runs with ``-f <lab>/ssh/sshd_config``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

from fleetpy.errors import LabError
from fleetpy.lab.host import run, wait_for
from fleetpy.lab.node import Node
from fleetpy.lab.state import LabPaths, NodeRecord

SSHD_UNIT = "fleetpy-lab-sshd.service"


def keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])


def sshd_config_text(authorized_keys: Path) -> str:
    return "\n".join([
        "# fleetpy lab sshd (generated); the host key and address come from the command line",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        f"AuthorizedKeysFile {authorized_keys}",
        "StrictModes no",  # the lab dir may live under a world-writable /tmp
        "UsePAM no",
        "AllowTcpForwarding yes",
        "PidFile none",
        "PrintMotd no",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
    ])


def known_hosts_line(ip: str, public_key: str) -> str:
    """``<ip> ssh-ed25519 AAAA...`` (the key's comment dropped)."""
    kind, blob = public_key.split()[:2]
    return f"{ip} {kind} {blob}"


def prepare(paths: LabPaths, nodes: Iterable[NodeRecord], lab: str) -> None:
    """Lab key pair, authorized_keys, sshd_config, node host keys and known_hosts (idempotent)."""
    keygen(paths.ssh_key, f"fleetpy-lab-{lab}")
    paths.authorized_keys.write_text(paths.ssh_key.with_suffix(".pub").read_text(encoding="utf-8"),
                                     encoding="utf-8")
    paths.sshd_config.write_text(sshd_config_text(paths.authorized_keys), encoding="utf-8")
    lines = []
    for node in nodes:
        key = paths.host_key(node.name)
        keygen(key, f"{node.hostname}@fleetpy-lab-{lab}")
        lines.append(known_hosts_line(node.ip, key.with_suffix(".pub").read_text(encoding="utf-8")))
    paths.known_hosts.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def start_sshd(node: Node, sshd: str) -> None:
    """sshd on the node's address as the transient unit ``fleetpy-lab-sshd.service`` in the node."""
    paths = node.paths
    node.exec(["systemctl", "reset-failed", SSHD_UNIT], timeout=10)
    node.systemd_run(
        SSHD_UNIT,
        [sshd, "-D", "-e", "-f", str(paths.sshd_config), "-h", str(paths.host_key(node.name)),
         "-o", f"ListenAddress={node.record.ip}"],
        properties=["RuntimeDirectory=sshd", "RuntimeDirectoryMode=0755"],
    )


def port_open(ip: str, port: int = 22, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_sshd(node: Node, timeout: float = 20.0) -> None:
    if not wait_for(lambda: port_open(node.record.ip), timeout, interval=0.05):
        raise LabError(f"sshd in {node.name} is not listening on {node.record.ip}:22 after {timeout:.0f} s")


def ssh_argv(paths: LabPaths, node: NodeRecord, command: list[str]) -> list[str]:
    """The system ``ssh`` command line that logs into ``node`` as root with the lab key, strict host keys."""
    return [
        "ssh", "-F", "/dev/null",
        "-i", str(paths.ssh_key),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={paths.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        f"root@{node.ip}",
        *command,
    ]
