"""Faults a test injects into a running lab: power (clean or cut), network (cut, heal) and etcd members.

I/O. Each fault keeps the node's identity: machine-id, hostname, address and host key live in the lab
directory and the netns survives a poweroff, so ``start`` boots the same machine again.
"""

from __future__ import annotations

from fleetpy.errors import LabError
from fleetpy.lab import net
from fleetpy.lab.etcd import Etcd
from fleetpy.lab.host import Host
from fleetpy.lab.lifecycle import boot
from fleetpy.lab.node import Node
from fleetpy.lab.state import LabPaths, LabRecord


def poweroff(node: Node) -> None:
    """Clean shutdown through the node's systemd (units get their stop jobs)."""
    if not node.running():
        raise LabError(f"{node.name} is already off")
    node.poweroff()


def kill(node: Node) -> None:
    """SIGKILL of the node's PID 1: every process in it dies at once, no unit is stopped cleanly."""
    if not node.running():
        raise LabError(f"{node.name} is already off")
    node.kill()


def start(paths: LabPaths, record: LabRecord, host: Host, node: Node) -> None:
    """Boot a stopped node again with the same identity, then its sshd (and fleetpyd if the lab runs agents)."""
    if node.running():
        raise LabError(f"{node.name} is already running")
    if not net.netns_exists(node.record.netns):
        raise LabError(f"the network namespace {node.record.netns} is gone: the lab is broken, run `fleetpy lab down`")
    try:
        boot(paths, record, host, [node.record])
    except BaseException:
        if node.running():
            node.kill()
        raise


def cut(record: LabRecord, node: str) -> None:
    """Unplug the node: its veth's host end goes down (the node keeps its address and runs on, alone)."""
    net.cut(record.node(node))


def heal(record: LabRecord, node: str) -> None:
    net.heal(record.node(node), record.bridge)


def etcd_stop(paths: LabPaths, record: LabRecord, member: str) -> None:
    m = record.member(member)
    etcd = Etcd(paths, record)
    if etcd.proc(m) is None:
        raise LabError(f"etcd member {m.name} is not running")
    etcd.stop(m)


def etcd_start(paths: LabPaths, record: LabRecord, host: Host, member: str, wait: bool = True) -> None:
    """Start a stopped member on its data dir; waits until it is healthy (with a quorum to rejoin)."""
    m = record.member(member)
    etcd = Etcd(paths, record, host.binary("etcd"))
    etcd.start(m)
    if wait:
        etcd.wait_healthy([m])
