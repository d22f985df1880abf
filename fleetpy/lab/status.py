"""What a lab looks like right now: frozen status records, gathered from the nodes, etcd and links.

I/O to gather (``gather``); the records and ``render`` (plain text table for ``fleetpy lab status``) are pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetpy.lab import agent, net
from fleetpy.lab.etcd import Etcd
from fleetpy.lab.node import Node
from fleetpy.lab.state import LabPaths, LabRecord


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    hostname: str
    ip: str
    machine_id: str
    state: str  # systemd's is-system-running ("running", "degraded", ...) or "off"
    cut: bool
    agent: str  # fleetpyd.service ActiveState, "-" when the node is off


@dataclass(frozen=True, slots=True)
class MemberStatus:
    name: str
    url: str
    state: str  # "healthy", "unhealthy" or "stopped"
    pid: int | None


@dataclass(frozen=True, slots=True)
class LabStatus:
    name: str
    dir: str
    subnet: str
    bridge: str
    bridge_ip: str
    nodes: tuple[NodeStatus, ...]
    etcd: tuple[MemberStatus, ...]


def node_status(node: Node) -> NodeStatus:
    rec = node.record
    if node.init() is None:
        state, agent_state = "off", "-"
    else:
        state = node.system_state()
        proc = node.exec(["systemctl", "is-active", agent.UNIT], timeout=10, require=False)
        agent_state = (proc.stdout or "").strip() or "unknown"
    return NodeStatus(rec.name, rec.hostname, rec.ip, rec.machine_id, state, net.is_cut(rec), agent_state)


def gather(paths: LabPaths, record: LabRecord) -> LabStatus:
    nodes = tuple(node_status(Node(record.name, paths, n)) for n in record.nodes)
    etcd = Etcd(paths, record)
    members = []
    for member in record.etcd:
        proc = etcd.proc(member)
        state = "stopped" if proc is None else "healthy" if etcd.healthy(member) else "unhealthy"
        members.append(MemberStatus(member.name, record.client_url(member), state, proc.pid if proc else None))
    return LabStatus(record.name, str(paths.root), record.subnet, record.bridge, record.bridge_ip, nodes,
                     tuple(members))


def render(status: LabStatus) -> str:
    lines = [
        f"lab {status.name}: subnet {status.subnet}, bridge {status.bridge} ({status.bridge_ip}), state {status.dir}",
        "",
    ]
    rows: list[tuple[str, ...]] = [("NODE", "HOSTNAME", "IP", "MACHINE", "SYSTEM", "LINK", "FLEETPYD")]
    rows += [(n.name, n.hostname, n.ip, n.machine_id, n.state, "cut" if n.cut else "up", n.agent) for n in status.nodes]
    lines += _table(rows)
    lines.append("")
    rows = [("ETCD", "URL", "STATE", "PID")]
    rows += [(m.name, m.url, m.state, str(m.pid) if m.pid else "-") for m in status.etcd]
    lines += _table(rows)
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
