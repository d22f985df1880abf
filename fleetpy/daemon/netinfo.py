"""This machine's identity: ``/etc/machine-id`` and the public IP fleet would publish when none is configured.

I/O (reads /etc, /proc and interface addresses through ioctls; no subprocess, no dependency). The public IP is
the first global IPv4 address of the default-route interface, else of any non-loopback interface (a lab node
has no default route), else "".
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

from fleetpy.errors import ConfigError

MACHINE_ID_FILE = "/etc/machine-id"
_SIOCGIFADDR = 0x8915


def machine_id(path: str = MACHINE_ID_FILE) -> str:
    try:
        with open(path, encoding="ascii") as f:
            value = f.read().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the machine ID from {path}: {err}") from err
    if not value:
        raise ConfigError(f"{path} is empty: cannot identify this machine")
    return value


def default_route_interface(route_file: str = "/proc/net/route") -> str | None:
    try:
        with open(route_file, encoding="ascii") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) > 7 and parts[1] == "00000000" and parts[7] == "00000000":
                    return parts[0]
    except OSError:
        return None
    return None


def interface_ipv4(name: str) -> str | None:
    """The (primary) IPv4 address of an interface, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def is_global(address: str) -> bool:
    ip = ipaddress.IPv4Address(address)
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def detect_public_ip() -> str:
    """fleet's rule, with a fallback for machines without a default route."""
    candidates = []
    default = default_route_interface()
    if default:
        candidates.append(default)
    candidates += [name for _, name in sorted(socket.if_nameindex()) if name != default and name != "lo"]
    for name in candidates:
        address = interface_ipv4(name)
        if address and is_global(address):
            return address
    return ""
