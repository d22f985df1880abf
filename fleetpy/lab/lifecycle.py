"""``up`` and ``down``: build a lab from nothing, and remove every trace of it, also after a failed ``up``.

I/O orchestration over net, cgroups, node, etcd, ssh and agent. The record (``lab.json``) is written before
any resource exists, and ``teardown`` removes whatever of it exists, so a crash at any step leaves a lab that
``down`` can remove. Resource names are checked free first, so whatever ``teardown`` finds is the lab's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import fleetpy
from fleetpy.errors import LabError
from fleetpy.lab import agent, net, scripts, ssh
from fleetpy.lab.etcd import Etcd, plan_members
from fleetpy.lab.host import NODE_PATH, Host, global_lock, preflight
from fleetpy.lab.node import Node, new_machine_id, write_identity
from fleetpy.lab.state import (
    MAX_NODES,
    LabPaths,
    LabRecord,
    NodeRecord,
    bridge_name,
    netns_name,
    node_name,
    read_record,
    veth_name,
    write_record,
)

Metadata = Mapping[str, Mapping[str, str]]


PRIVATE_DIRS = ("/tmp/", "/root/")  # each node has its own /tmp and its own /root (see scripts.NODE_INIT)


def keep_paths(lab_root: Path) -> tuple[str, ...]:
    """Paths under a node's private dirs that it must still see: the lab dir, the project checkout, the venv
    and the Python it was made from (minimal set)."""
    checkout = Path(fleetpy.__file__).resolve().parents[1]
    wanted: set[str] = set()
    for path in (lab_root, checkout, Path(sys.prefix), Path(sys.base_prefix)):
        for variant in (os.path.abspath(path), os.path.realpath(path)):
            if variant.startswith(PRIVATE_DIRS):
                wanted.add(variant)
    return tuple(sorted(p for p in wanted if not any(p.startswith(q + "/") for q in wanted if q != p)))


def check_metadata(metadata: Metadata, node_names: Iterable[str]) -> None:
    names = set(node_names)
    for node, values in metadata.items():
        if node not in names:
            raise LabError(f"metadata for unknown node {node!r} (nodes: {', '.join(sorted(names))})")
        for key, value in values.items():
            if not key or any(c in key + value for c in ",=\n"):
                raise LabError(f"bad metadata {key}={value} for {node}: no ',' '=' or newline in keys and values")


def plan_nodes(name: str, subnet: net.Network, count: int, metadata: Metadata) -> tuple[NodeRecord, ...]:
    host_name = socket.gethostname()
    nodes = []
    for index in range(1, count + 1):
        node = node_name(index)
        # a node is named nodeN inside its own UTS namespace; only if the host itself is called nodeN would
        # fleet's output mix them up, and then the lab name is prefixed
        hostname = node if node != host_name else f"{name}-{node}"
        nodes.append(NodeRecord(
            name=node, index=index, hostname=hostname, ip=net.node_ip(subnet, index),
            machine_id=new_machine_id(), netns=netns_name(name, index), veth=veth_name(name, index),
            metadata=dict(metadata.get(node, {})),
        ))
    return tuple(nodes)


def up(paths: LabPaths, name: str, host: Host, *, nodes: int, etcd_members: int, metadata: Metadata | None,
       agents: bool, agent_env: Mapping[str, str] | None, subnet: str | None,
       progress: Callable[[str], None] | None = None) -> LabRecord:
    say = progress or (lambda _msg: None)
    if not 1 <= nodes <= MAX_NODES:
        raise LabError(f"nodes must be between 1 and {MAX_NODES}, not {nodes}")
    if etcd_members not in (1, 3):
        raise LabError(f"etcd members must be 1 or 3, not {etcd_members}")
    metadata = metadata or {}
    check_metadata(metadata, [node_name(i) for i in range(1, nodes + 1)])
    preflight(host)

    with global_lock():
        existing = read_record(paths)
        if existing is not None:
            raise LabError(f"lab {name} is already up ({len(existing.nodes)} nodes, state in {paths.root}); "
                           f"`fleetpy lab down --name {name}` first")
        if paths.root.exists() and any(paths.root.iterdir()):
            raise LabError(f"{paths.root} exists and is not empty: not a lab directory, choose another")
        if subnet is not None:
            chosen = net.parse_subnet(subnet)
            net.check_subnet_free(chosen)
        else:
            chosen = net.pick_subnet(name, net.used_networks())
        record = LabRecord(
            name=name, subnet=str(chosen), bridge=bridge_name(name), bridge_ip=net.bridge_ip(chosen),
            nodes=plan_nodes(name, chosen, nodes, metadata), etcd=(), keep_paths=keep_paths(paths.root),
            agents=agents, agent_env=dict(agent_env or {}), netns_dir_created=not os.path.isdir(net.NETNS_DIR),
        )
        net.check_names_free(name, record.bridge, record.nodes)
        paths.root.mkdir(parents=True, exist_ok=True)
        write_record(paths, record)
        try:
            say(f"bridge {record.bridge} {record.bridge_ip}/{chosen.prefixlen}")
            net.create_bridge(name, record.bridge, chosen)
            for node in record.nodes:
                net.create_node_link(node, record.bridge, chosen)
        except BaseException as err:
            failure: BaseException | None = err
        else:
            failure = None
    if failure is not None:
        _teardown_after_failure(paths, record, host)
        raise failure

    try:
        record = dataclasses.replace(record, etcd=plan_members(record.bridge_ip, etcd_members))
        write_record(paths, record)
        scripts.write_scripts(paths.launcher, paths.node_init, NODE_PATH)
        ssh.prepare(paths, record.nodes, name)
        for node in record.nodes:
            write_identity(paths, node)
        say(f"etcd: {', '.join(record.endpoints)}")
        etcd = Etcd(paths, record, host.binary("etcd"))
        etcd.start_all()
        boot(paths, record, host, record.nodes, progress=say, etcd=etcd)
    except BaseException:
        _teardown_after_failure(paths, record, host)
        raise
    return record


def _teardown_after_failure(paths: LabPaths, record: LabRecord, host: Host) -> None:
    with contextlib.suppress(LabError):
        teardown(paths, record, host)


def boot(paths: LabPaths, record: LabRecord, host: Host, nodes: Iterable[NodeRecord], *,
         progress: Callable[[str], None] | None = None, etcd: Etcd | None = None) -> None:
    """Start nodes (all at once), wait for their systemd, then sshd and (if the lab has agents) fleetpyd."""
    say = progress or (lambda _msg: None)
    handles = [Node(record.name, paths, n) for n in nodes]
    for node in handles:
        node.launch(host, record.keep_paths)
    if etcd is not None:
        etcd.wait_healthy()
    for node in handles:
        node.wait_booted()
        say(f"{node.name} {node.record.ip} up (machine-id {node.record.machine_id})")
    sshd = host.binary("sshd")
    for node in handles:
        ssh.start_sshd(node, sshd)
    for node in handles:
        ssh.wait_sshd(node)
    if record.agents:
        for node in handles:
            agent.start(node, agent.agent_environment(record, node.record))


def stop_nodes(nodes: Iterable[Node], timeout: float = 15.0) -> list[str]:
    """Power off every running node at once, SIGKILL the stragglers; returns error messages."""
    handles = list(nodes)
    errors = []
    requested = [node.request_poweroff() for node in handles]
    for node, asked in zip(handles, requested, strict=True):
        try:
            node.poweroff(timeout, requested=asked)
        except LabError as err:
            errors.append(str(err))
    return errors


def teardown(paths: LabPaths, record: LabRecord, host: Host) -> None:
    """Remove nodes, cgroups, etcd, netns, veths, bridge and the lab dir; tolerant of anything already gone."""
    errors = stop_nodes(Node(record.name, paths, n) for n in record.nodes)
    try:
        Etcd(paths, record).stop_all()
    except LabError as err:
        errors.append(str(err))
    with global_lock():
        for node in record.nodes:
            try:
                net.delete_node_link(node)
            except LabError as err:
                errors.append(str(err))
        try:
            net.delete_bridge(record.bridge, record.name)
        except LabError as err:
            errors.append(str(err))
        if record.netns_dir_created:
            net.remove_netns_dir_if_empty()
    if errors:
        raise LabError(f"teardown of lab {record.name} incomplete (run `fleetpy lab down` again): {'; '.join(errors)}")
    if paths.record.exists():
        shutil.rmtree(paths.root, ignore_errors=True)
