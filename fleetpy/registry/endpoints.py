"""Where etcd is and how to reach it: ``TLSConfig`` and ``parse_endpoints``, without importing the etcd client.

Pure. Kept apart from ``fleetpy.registry.etcd`` so that the CLI's option parsing and the API driver do not pay
for importing python-etcd (~70 ms of the CLI's start-up, most of it dnspython and urllib3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from fleetpy.errors import RegistryError


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.ca_file or self.cert_file or self.key_file)


def parse_endpoints(spec: str | Sequence[str]) -> list[str]:
    """``"http://a:2379,http://b:2379"`` (or fleet.conf's ``["a","b"]``) -> validated URL list."""
    raw = spec.split(",") if isinstance(spec, str) else list(spec)
    out = []
    for item in raw:
        item = item.strip().strip('[]" ')
        if not item:
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(f"invalid etcd endpoint {item!r}: expected http(s)://host:port")
        out.append(item.rstrip("/"))
    if not out:
        raise RegistryError("no etcd endpoint given")
    return out
