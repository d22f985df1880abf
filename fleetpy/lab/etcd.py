"""The lab's etcd: 1 or 3 members on the bridge address, v2 enabled, host processes stopped by PID.

I/O. ``member_argv`` is pure. Each member runs detached (``setsid``) with its data and log under
``<lab>/etcd/<member>/``; its PID and start time are in ``pid`` there, so only that process is ever signalled.
"""

from __future__ import annotations

import json
import shutil
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence

from fleetpy.errors import LabError
from fleetpy.lab.host import Proc, spawn_detached, wait_for
from fleetpy.lab.state import EtcdMember, LabPaths, LabRecord, etcd_member_name

# never go through a proxy from the host's environment: the lab's addresses are local
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_ports(host: str, count: int) -> list[int]:
    """Ports free on ``host`` right now (all sockets open at once so they differ)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def plan_members(bridge_ip: str, count: int) -> tuple[EtcdMember, ...]:
    if count not in (1, 3):
        raise LabError(f"etcd members must be 1 or 3, not {count}")
    ports = free_ports(bridge_ip, 2 * count)
    return tuple(EtcdMember(etcd_member_name(i + 1), ports[2 * i], ports[2 * i + 1]) for i in range(count))


def member_argv(binary: str, record: LabRecord, member: EtcdMember, data_dir: str) -> list[str]:
    cluster = ",".join(f"{m.name}={record.peer_url(m)}" for m in record.etcd)
    return [
        binary,
        f"--name={member.name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={record.client_url(member)}",
        f"--advertise-client-urls={record.client_url(member)}",
        f"--listen-peer-urls={record.peer_url(member)}",
        f"--initial-advertise-peer-urls={record.peer_url(member)}",
        f"--initial-cluster={cluster}",
        f"--initial-cluster-token=fleetpy-lab-{record.name}",
        "--initial-cluster-state=new",
        "--enable-v2=true",
        "--logger=zap",
        "--log-outputs=stderr",
    ]


class Etcd:
    """The lab's etcd members."""

    def __init__(self, paths: LabPaths, record: LabRecord, binary: str | None = None) -> None:
        self.paths = paths
        self.record = record
        self.binary = binary

    def proc(self, member: EtcdMember) -> Proc | None:
        proc = Proc.load(self.paths.etcd(member.name) / "pid")
        return proc if proc is not None and proc.alive() else None

    def start(self, member: EtcdMember) -> None:
        if self.proc(member) is not None:
            raise LabError(f"etcd member {member.name} is already running")
        binary = self.binary or shutil.which("etcd") or "etcd"
        member_dir = self.paths.etcd(member.name)
        member_dir.mkdir(parents=True, exist_ok=True)
        argv = member_argv(binary, self.record, member, str(member_dir / "data"))
        spawn_detached(argv, pid_file=member_dir / "pid", log=member_dir / "member.log")

    def start_all(self) -> None:
        for member in self.record.etcd:
            self.start(member)

    def wait_healthy(self, members: Sequence[EtcdMember] | None = None, timeout: float = 30.0) -> None:
        members = list(self.record.etcd if members is None else members)

        def healthy() -> bool:
            return all(self.healthy(m) for m in members)

        if not wait_for(healthy, timeout, interval=0.1):
            dead = [m.name for m in members if self.proc(m) is None]
            why = f"{', '.join(dead)} exited; see {self.paths.etcd(dead[0])}/member.log" if dead else "not healthy"
            raise LabError(f"etcd did not become healthy within {timeout:.0f} s: {why}")

    def healthy(self, member: EtcdMember) -> bool:
        try:
            with _OPENER.open(f"{self.record.client_url(member)}/health", timeout=1.0) as resp:
                return bool(json.load(resp).get("health") in ("true", True))
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def stop(self, member: EtcdMember, timeout: float = 10.0) -> None:
        proc = self.proc(member)
        if proc is not None:
            proc.stop(timeout)
        (self.paths.etcd(member.name) / "pid").unlink(missing_ok=True)

    def stop_all(self) -> None:
        for member in self.record.etcd:
            self.stop(member)
