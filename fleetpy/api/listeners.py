"""Listening sockets for the API: a unix socket created with its final mode, TCP ``host:port``, systemd's.

I/O (socket and file system calls), no HTTP. The unix socket is bound under a temporary name, chmod-ed (and
chgrp-ed), put into listening state and only then renamed into place, so it is never reachable with looser
permissions and never refuses a connection once visible. A path held by a live server is refused; a stale socket
file is replaced.
"""

from __future__ import annotations

import contextlib
import grp
import os
import socket
import stat
from collections.abc import Mapping

from fleetpy.api.errors import ListenError

BACKLOG = 128
_SUN_PATH_MAX = 107
SD_LISTEN_FDS_START = 3


def parse_tcp(address: str) -> tuple[str, int]:
    """``"127.0.0.1:54728"``, ``"[::1]:0"``, ``":8080"`` (all interfaces) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ListenError(f"invalid TCP listen address {address!r}: expect host:port")
    host = host.strip("[]") if host.startswith("[") else host
    return host, int(port)


def _in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _check_path(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ListenError(f"{path}: exists and is not a socket")
    if _in_use(path):
        raise ListenError(f"{path}: another server is listening there")


def _group_id(group: str | int | None) -> int:
    if group is None:
        return -1
    if isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ListenError(f"unknown group {group!r} for the API socket") from None


def bind_unix(path: str, *, mode: int = 0o660, group: str | int | None = None) -> socket.socket:
    """A listening unix socket at ``path`` with ``mode`` (and ``group``), never visible with other permissions."""
    path = os.path.abspath(path)
    if len(path.encode()) > _SUN_PATH_MAX:
        raise ListenError(f"{path}: socket path too long (max {_SUN_PATH_MAX} bytes)")
    _check_path(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    gid = _group_id(group)
    temp = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}")
    if len(temp.encode()) > _SUN_PATH_MAX:
        temp = path  # no room for a temporary name: bind in place (chmod follows at once)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        sock.bind(temp)
        os.chmod(temp, mode)
        if gid != -1:
            os.chown(temp, -1, gid)
        sock.listen(BACKLOG)
        if temp != path:
            os.replace(temp, path)
    except OSError as err:
        sock.close()
        with contextlib.suppress(OSError):
            if temp != path:
                os.unlink(temp)
        raise ListenError(f"cannot listen on {path}: {err.strerror or err}") from err
    return sock


def file_identity(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


def unlink_if_ours(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file at ``path`` unless another server has replaced it since (``identity`` is what
    ``file_identity`` said right after binding)."""
    try:
        if file_identity(path) == identity:
            os.unlink(path)
    except OSError:
        pass


def bind_tcp(address: str) -> socket.socket:
    host, port = parse_tcp(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as err:
        sock.close()
        raise ListenError(f"cannot listen on {address}: {err.strerror or err}") from err
    return sock


def systemd_sockets(environ: Mapping[str, str] | None = None) -> list[socket.socket]:
    """Sockets passed by systemd socket activation (``LISTEN_PID``/``LISTEN_FDS``), as fleet's fleet.socket does."""
    env = os.environ if environ is None else environ
    if env.get("LISTEN_PID", "") != str(os.getpid()):
        return []
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return [socket.socket(fileno=fd) for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)]
