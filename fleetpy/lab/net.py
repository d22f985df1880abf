"""The lab network: one bridge per lab, one netns + veth pair per node, no default route.

Subnet choice is pure (``pick_subnet`` over the networks in use); the rest drives ``ip``. Every name and address
is the lab's own (see ``fleetpy.lab.state``); nothing outside the lab's subnet and loopback is ever configured.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
from collections.abc import Iterable

from fleetpy.errors import LabError
from fleetpy.lab.host import run, wait_for
from fleetpy.lab.state import NODE_HOST_OFFSET, NodeRecord

NETNS_DIR = "/run/netns"
BRIDGE_ALIAS_PREFIX = "fleetpy-lab:"

Network = ipaddress.IPv4Network


def candidate_subnets(name: str) -> list[Network]:
    """10.x.y.0/24 for x in 100..199, in an order that starts at a point derived from the lab name."""
    space = [ipaddress.IPv4Network(f"10.{x}.{y}.0/24") for x in range(100, 200) for y in range(256)]
    start = int(hashlib.sha1(name.encode()).hexdigest(), 16) % len(space)
    return space[start:] + space[:start]


def pick_subnet(name: str, used: Iterable[Network]) -> Network:
    """The first candidate overlapping none of ``used`` (pure)."""
    used = list(used)
    for net in candidate_subnets(name):
        if not any(net.overlaps(u) for u in used):
            return net
    raise LabError("no free 10.x.y.0/24 subnet left for the lab")


def parse_subnet(text: str) -> Network:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as err:
        raise LabError(f"invalid subnet {text!r}: {err}") from err
    if net.prefixlen != 24 or not net.is_private:
        raise LabError(f"subnet {text} must be a private /24 (e.g. 10.77.0.0/24)")
    return net


def used_networks() -> list[Network]:
    """IPv4 networks on any interface or in any route table of the host."""
    nets: list[Network] = []
    for entry in json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for addr in entry.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
    return nets


def check_subnet_free(net: Network) -> None:
    for used in used_networks():
        if net.overlaps(used) and used.prefixlen > 0:
            raise LabError(f"subnet {net} is already in use on this host ({used}): pick another with --subnet")


def bridge_ip(net: Network) -> str:
    return str(net.network_address + 1)


def node_ip(net: Network, index: int) -> str:
    return str(net.network_address + NODE_HOST_OFFSET + index)


# -- links ---------------------------------------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name], check=False).returncode == 0


def link_info(name: str) -> dict[str, object] | None:
    proc = run(["ip", "-j", "-d", "link", "show", "dev", name], check=False)
    if proc.returncode != 0:
        return None
    entries = json.loads(proc.stdout or "[]")
    return entries[0] if entries else None


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def check_names_free(lab: str, bridge: str, nodes: Iterable[NodeRecord]) -> None:
    if link_exists(bridge):
        info = link_info(bridge) or {}
        owner = str(info.get("ifalias", ""))
        hint = ""
        if owner.startswith(BRIDGE_ALIAS_PREFIX):
            hint = f" (by lab {owner.removeprefix(BRIDGE_ALIAS_PREFIX)}, whose state is gone)"
        raise LabError(f"bridge name {bridge} is already taken{hint}: ip link del {bridge}, or use another --name")
    for node in nodes:
        if link_exists(node.veth):
            raise LabError(f"interface {node.veth} already exists: ip link del {node.veth}, or use another --name")
        if netns_exists(node.netns):
            raise LabError(f"network namespace {node.netns} already exists: ip netns del {node.netns}")


def create_bridge(lab: str, bridge: str, net: Network) -> None:
    run(["ip", "link", "add", bridge, "type", "bridge"])
    run(["ip", "link", "set", "dev", bridge, "alias", f"{BRIDGE_ALIAS_PREFIX}{lab}"])
    run(["ip", "addr", "add", f"{bridge_ip(net)}/{net.prefixlen}", "dev", bridge])
    run(["ip", "link", "set", "dev", bridge, "up"])


def delete_bridge(bridge: str, lab: str) -> None:
    info = link_info(bridge)
    if info is None:
        return
    if info.get("ifalias") not in (None, f"{BRIDGE_ALIAS_PREFIX}{lab}"):
        raise LabError(f"bridge {bridge} belongs to {info.get('ifalias')}, not to lab {lab}: not removing it")
    run(["ip", "link", "del", "dev", bridge], check=False)


def create_node_link(node: NodeRecord, bridge: str, net: Network) -> None:
    """netns, veth pair (host end on the bridge, ``eth0`` in the netns), the node's address, lo up. No route."""
    run(["ip", "netns", "add", node.netns])
    run(["ip", "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns", node.netns])
    run(["ip", "link", "set", "dev", node.veth, "master", bridge])
    run(["ip", "link", "set", "dev", node.veth, "up"])
    run(["ip", "-n", node.netns, "addr", "add", f"{node.ip}/{net.prefixlen}", "dev", "eth0"])
    run(["ip", "-n", node.netns, "link", "set", "dev", "eth0", "up"])
    run(["ip", "-n", node.netns, "link", "set", "dev", "lo", "up"])


def delete_node_link(node: NodeRecord) -> None:
    if netns_exists(node.netns):
        run(["ip", "netns", "del", node.netns], check=False)
    # the host end vanishes asynchronously once the netns is gone; remove it ourselves if it lingers
    if not wait_for(lambda: not link_exists(node.veth), 3.0):
        run(["ip", "link", "del", "dev", node.veth], check=False)


def cut(node: NodeRecord) -> None:
    """Take the host end of the node's veth down: the node keeps its address but reaches nothing."""
    run(["ip", "link", "set", "dev", node.veth, "down"])


def heal(node: NodeRecord, bridge: str) -> None:
    run(["ip", "link", "set", "dev", node.veth, "master", bridge])
    run(["ip", "link", "set", "dev", node.veth, "up"])


def is_cut(node: NodeRecord) -> bool:
    info = link_info(node.veth)
    flags = info.get("flags") if info else None
    return not isinstance(flags, list) or "UP" not in flags


def remove_netns_dir_if_empty() -> None:
    """``ip netns add`` leaves /run/netns (a bind mount on itself) behind; remove it once empty."""
    if not os.path.isdir(NETNS_DIR) or os.listdir(NETNS_DIR):
        return
    run(["umount", "-n", NETNS_DIR], check=False)
    with contextlib.suppress(OSError):
        os.rmdir(NETNS_DIR)
