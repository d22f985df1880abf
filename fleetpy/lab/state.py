"""The lab's names, directory layout and its record (``lab.json``).

Mostly pure: naming rules (bridge, veth, netns and cgroup names derived from the lab name), the frozen records
and their JSON codec. The only I/O is reading and writing files inside the lab's own directory.

Layout of a lab directory::

    lab.json                      the LabRecord (written before any resource is created)
    node-init.sh launcher.sh      generated scripts (fleetpy.lab.scripts)
    ssh/                          id_ed25519{,.pub} authorized_keys sshd_config known_hosts
    nodes/<node>/                 machine-id hostname ssh_host_ed25519_key{,.pub} console.log launch.log
                                  pid (launcher = unshare), init (node PID 1 seen from the host), cgroups
    etcd/<member>/                data/ pid member.log
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fleetpy.errors import LabError

DEFAULT_ROOT = "/var/lib/fleetpy/lab"
ROOT_ENV = "FLEETPY_LAB_DIR"
DEFAULT_NAME = "fleetpy"
MAX_NODES = 50
NODE_HOST_OFFSET = 10  # node N gets <subnet>.(10+N); the bridge (host side, etcd) gets .1
RECORD_VERSION = 1

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_FORBIDDEN_DIRS = ("/run", "/proc", "/sys", "/dev")


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise LabError(f"invalid lab name {name!r}: 1-32 letters, digits, '-' or '_', starting with a letter or digit")
    return name


def lab_tag(name: str) -> str:
    """A short (<= 8 chars) tag for interface names; long or mixed-case names are shortened with a hash."""
    if len(name) <= 8 and re.match(r"^[a-z0-9]+$", name):
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()
    prefix = re.sub(r"[^a-z0-9]", "", name.lower())[:3]
    return f"{prefix}{digest[: 8 - len(prefix)]}"


def bridge_name(name: str) -> str:
    return f"fpb-{lab_tag(name)}"


def veth_name(name: str, index: int) -> str:
    return f"fpv-{lab_tag(name)}-{index}"


def netns_name(name: str, index: int) -> str:
    return f"fp-{name}-n{index}"


def cgroup_name(name: str, node: str) -> str:
    return f"fp-{name}-{node}"


def node_name(index: int) -> str:
    return f"node{index}"


def etcd_member_name(index: int) -> str:
    return f"etcd{index}"


def lab_dir(name: str, state_dir: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
            ) -> Path:
    """The lab's own directory: ``state_dir`` if given, else ``$FLEETPY_LAB_DIR/<name>`` or the default root."""
    if state_dir is not None:
        path = Path(state_dir)
    else:
        root = (os.environ if environ is None else environ).get(ROOT_ENV) or DEFAULT_ROOT
        path = Path(root) / name
    path = Path(os.path.abspath(path))
    for bad in _FORBIDDEN_DIRS:
        if path == Path(bad) or Path(bad) in path.parents:
            raise LabError(f"lab directory {path} is under {bad}: nodes get a private {bad}; choose another place")
    if path == Path("/"):
        raise LabError("the lab directory cannot be /")
    return path


def _frozen(d: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted((d or {}).items())))


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One node's fixed identity: kept across poweroff/start."""

    name: str
    index: int
    hostname: str
    ip: str
    machine_id: str
    netns: str
    veth: str
    metadata: Mapping[str, str] = field(default_factory=lambda: _frozen(None))

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen(self.metadata))


@dataclass(frozen=True, slots=True)
class EtcdMember:
    name: str
    client_port: int
    peer_port: int


@dataclass(frozen=True, slots=True)
class LabRecord:
    """Everything ``down`` needs to remove what ``up`` created; written before the first resource exists."""

    name: str
    subnet: str
    bridge: str
    bridge_ip: str
    nodes: tuple[NodeRecord, ...]
    etcd: tuple[EtcdMember, ...]
    keep_paths: tuple[str, ...]  # paths under /tmp or /root bound back into every node's private ones
    agents: bool = True
    agent_env: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    netns_dir_created: bool = False
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "agent_env", _frozen(self.agent_env))

    def node(self, name: str) -> NodeRecord:
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise LabError(f"lab {self.name} has no node {name!r} (nodes: {known})")

    def member(self, name: str) -> EtcdMember:
        wanted = etcd_member_name(int(name)) if name.isdigit() else name
        for member in self.etcd:
            if member.name == wanted:
                return member
        known = ", ".join(m.name for m in self.etcd)
        raise LabError(f"lab {self.name} has no etcd member {name!r} (members: {known})")

    def client_url(self, member: EtcdMember) -> str:
        return f"http://{self.bridge_ip}:{member.client_port}"

    def peer_url(self, member: EtcdMember) -> str:
        return f"http://{self.bridge_ip}:{member.peer_port}"

    @property
    def endpoints(self) -> list[str]:
        return [self.client_url(m) for m in self.etcd]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    return value


def record_to_json(record: LabRecord) -> str:
    return json.dumps(_plain(record), indent=2, sort_keys=True) + "\n"


def record_from_json(text: str) -> LabRecord:
    data = json.loads(text)
    if data.get("version") != RECORD_VERSION:
        raise LabError(f"lab record version {data.get('version')} is not {RECORD_VERSION}")
    nodes = tuple(
        NodeRecord(**{**raw, "metadata": _frozen(raw.get("metadata"))}) for raw in data.pop("nodes")
    )
    etcd = tuple(EtcdMember(**raw) for raw in data.pop("etcd"))
    return LabRecord(
        **{**data, "nodes": nodes, "etcd": etcd, "keep_paths": tuple(data["keep_paths"]),
           "agent_env": _frozen(data.get("agent_env"))}
    )


@dataclass(frozen=True, slots=True)
class LabPaths:
    """Paths inside one lab directory (pure)."""

    root: Path

    @property
    def record(self) -> Path:
        return self.root / "lab.json"

    @property
    def node_init(self) -> Path:
        return self.root / "node-init.sh"

    @property
    def launcher(self) -> Path:
        return self.root / "launcher.sh"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def ssh_key(self) -> Path:
        return self.ssh / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh / "authorized_keys"

    @property
    def sshd_config(self) -> Path:
        return self.ssh / "sshd_config"

    @property
    def known_hosts(self) -> Path:
        return self.ssh / "known_hosts"

    def node(self, node: str) -> Path:
        return self.root / "nodes" / node

    def host_key(self, node: str) -> Path:
        return self.node(node) / "ssh_host_ed25519_key"

    def etcd(self, member: str) -> Path:
        return self.root / "etcd" / member


def read_record(paths: LabPaths) -> LabRecord | None:
    try:
        text = paths.record.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return record_from_json(text)
    except (ValueError, TypeError, KeyError) as err:
        raise LabError(f"{paths.record} is not a lab record: {err}") from err


def write_record(paths: LabPaths, record: LabRecord) -> None:
    tmp = paths.record.with_suffix(".json.tmp")
    tmp.write_text(record_to_json(record), encoding="utf-8")
    os.replace(tmp, paths.record)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
