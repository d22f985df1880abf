"""fleetpyd configuration: fleet.conf (``key=value`` at top level) overridden by ``FLEET_<OPTION>`` variables.

Pure apart from reading the file and the environment (an empty ``public_ip`` is autodetected later, by
``fleetpy.daemon.netinfo``). Options, defaults and value syntax follow fleet (fleet-reference.md 4.5); bad values
raise ``ConfigError`` with a one-line message naming the option and where it came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

from fleetpy.errors import ConfigError
from fleetpy.registry.keys import DEFAULT_PREFIX

DEFAULT_CONFIG_FILE = "/etc/fleet/fleet.conf"
DEPRECATED = frozenset({"verify_units", "authorized_keys_file"})
IGNORED = frozenset({"systemd_user", "enable_grpc"})  # fleet options fleetpyd accepts and ignores
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration (``30s``, ``1m30s``, ``500ms``, ``1.5h``, ``0``) -> seconds."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 1m30s, 500ms)")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    value = text.strip()
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ValueError(f"invalid boolean {text!r} (expected true or false)")


def parse_metadata(text: str) -> dict[str, str]:
    """fleet's ``k=v,k2=v2`` (quotes around the whole string allowed, whitespace trimmed, last duplicate wins)."""
    out: dict[str, str] = {}
    text = text.strip().strip('"').strip("'")
    for pair in text.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"invalid metadata {pair!r} (expected key=value)")
        out[key] = value
    return out


def parse_servers(text: str) -> tuple[str, ...]:
    """fleet's string-slice flag: comma list, ``[`` ``]`` ``"`` and spaces stripped."""
    items = [item.strip().strip('[]" ') for item in text.split(",")]
    out = tuple(item for item in items if item)
    if not out:
        raise ValueError("no etcd server given")
    for item in out:
        if not re.match(r"^https?://[^/\s]+", item):
            raise ValueError(f"invalid etcd server {item!r} (expected http(s)://host:port)")
    return out


def parse_ip(text: str) -> str:
    text = text.strip()
    if text:
        ipaddress.ip_address(text)  # ValueError names the value
    return text


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


@dataclass(frozen=True, slots=True)
class Config:
    etcd_servers: tuple[str, ...] = ("http://127.0.0.1:2379", "http://127.0.0.1:4001")
    etcd_key_prefix: str = DEFAULT_PREFIX
    etcd_request_timeout: float = 1.0
    etcd_keyfile: str = ""
    etcd_certfile: str = ""
    etcd_cafile: str = ""
    etcd_username: str = ""
    etcd_password: str = field(default="", repr=False)
    metadata: Mapping[str, str] = field(default_factory=dict)
    public_ip: str = ""
    agent_ttl: float = 30.0
    engine_reconcile_interval: float = 2.0
    units_directory: str = "/run/fleet/units"
    disable_engine: bool = False
    disable_watches: bool = False
    verbosity: int = 0
    shutdown_keep_units: bool = False
    job_relay: bool = True  # fleetpy's: agents take their job records from the leader's relay (docs/agent.md)
    token_limit: int = 100
    api_socket: str = "/var/run/fleet.sock"  # fleetpy's: fleet got its listeners from fleet.socket; "" = none
    api_tcp: str = ""  # "host:port" for a TCP listener as well (fleet's functional tests used :54728)
    api_socket_group: str = ""
    source: str = "defaults"  # where the values came from, for messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @property
    def ttl_seconds(self) -> int:
        """agent_ttl as etcd's whole seconds (at least 1)."""
        return max(1, round(self.agent_ttl))


_PARSERS: dict[str, Callable[[str], object]] = {
    "etcd_servers": parse_servers,
    "etcd_request_timeout": lambda v: _positive(float(v)),
    "engine_reconcile_interval": lambda v: _positive(float(v)),
    "agent_ttl": lambda v: _positive(parse_duration(v)),
    "metadata": parse_metadata,
    "disable_engine": parse_bool,
    "disable_watches": parse_bool,
    "shutdown_keep_units": parse_bool,
    "job_relay": parse_bool,
    "verbosity": int,
    "token_limit": lambda v: _positive(int(v)),
    "public_ip": parse_ip,
}
OPTIONS = tuple(f.name for f in fields(Config) if f.name != "source")


def read_file(path: str) -> dict[str, str]:
    """fleet.conf: ``key=value`` lines, ``#``/``;`` comments, optional quotes around a value; no sections."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    out: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip() or line.startswith("["):
            raise ConfigError(f"{path}:{number}: expected key=value, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def load(path: str | None = None, environ: Mapping[str, str] | None = None) -> tuple[Config, list[str]]:
    """Build the config: defaults < file (``path``, else /etc/fleet/fleet.conf if present) < ``FLEET_*``.

    Returns the config and warnings (deprecated or unknown options)."""
    env = os.environ if environ is None else environ
    raw: dict[str, tuple[str, str]] = {}  # option -> (value, where)
    warnings: list[str] = []
    file = path if path is not None else (DEFAULT_CONFIG_FILE if os.path.exists(DEFAULT_CONFIG_FILE) else None)
    if file is not None:
        for key, value in read_file(file).items():
            raw[key] = (value, file)
    for name in (*OPTIONS, *DEPRECATED, *IGNORED):
        var = f"FLEET_{name.upper()}"
        if var in env:
            raw[name] = (env[var], var)
    values: dict[str, object] = {}
    for key, (value, where) in raw.items():
        if key in DEPRECATED:
            warnings.append(f"{key} (from {where}) is deprecated and ignored")
            continue
        if key in IGNORED:
            continue
        if key not in OPTIONS:
            warnings.append(f"unknown option {key!r} in {where} ignored")
            continue
        parser = _PARSERS.get(key, str.strip)
        try:
            values[key] = parser(value)
        except ValueError as err:
            raise ConfigError(f"invalid {key} {value!r} (from {where}): {err}") from err
    sources = sorted({where for _, where in raw.values()})
    return Config(**values, source=", ".join(sources) or "defaults"), warnings  # type: ignore[arg-type]
