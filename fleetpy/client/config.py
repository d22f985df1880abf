"""``ClientConfig``: every global option of ``fleetpy`` (fleetctl's persistent flags) as one frozen value.

Pure. Built once by the CLI from the command line and ``FLEETCTL_*`` environment variables, then handed to
``fleetpy.client.connect``; nothing else reads flags or the environment (no globals, fleet's ``globalFlags``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit

from fleetpy.errors import UsageError
from fleetpy.registry.endpoints import TLSConfig
from fleetpy.registry.keys import DEFAULT_PREFIX

DEFAULT_ENDPOINT = "http://127.0.0.1:2379,http://127.0.0.1:4001"
"""The etcd driver's default endpoints (etcd's two classic ports), also ``ClientConfig``'s default."""

API_SOCKET = "unix:///var/run/fleet.sock"
"""fleet's API endpoint: the CLI's default (``--driver=api``), as fleetctl's."""

ETCD_PORTS = (2379, 4001)

DEFAULT_REQUEST_TIMEOUT = 3.0
DEFAULT_SSH_TIMEOUT = 10.0
DEFAULT_SSH_USERNAME = "core"
DEFAULT_KNOWN_HOSTS_FILE = "~/.fleetctl/known_hosts"


class Driver(enum.StrEnum):
    """How the client reaches the cluster: etcd directly (fleet's ``--driver=etcd``) or the fleet HTTP API."""

    ETCD = "etcd"
    API = "api"

    @classmethod
    def parse(cls, text: str) -> Driver:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise UsageError(f'unknown driver "{text}": use "etcd" or "api"') from None


def choose_driver(driver: str | None, endpoint: str | None) -> tuple[Driver, str]:
    """The CLI's driver and endpoint from ``--driver``/``--endpoint`` (None: not given, by flag or environment).

    fleetctl's defaults: the API driver on ``unix:///var/run/fleet.sock``. Its auto-detection: an endpoint on
    etcd's port 2379 or 4001 means the etcd driver (fleetctl applies it when ``--driver`` is empty; fleetpy also
    when it is not given). An explicit driver without an endpoint gets that driver's default endpoint."""
    if driver is not None and driver.strip():
        chosen = Driver.parse(driver)
    elif endpoint and _port(endpoint.split(",")[0]) in ETCD_PORTS:
        chosen = Driver.ETCD
    else:
        chosen = Driver.API
    if not endpoint:
        endpoint = API_SOCKET if chosen is Driver.API else DEFAULT_ENDPOINT
    return chosen, endpoint


def _port(url: str) -> int | None:
    try:
        return urlsplit(url.strip()).port
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """fleetctl's global flags (fleet-reference 1.1), typed. The defaults are the library's (etcd on its classic
    ports); the CLI's are fleetctl's (``choose_driver``)."""

    endpoint: str = DEFAULT_ENDPOINT
    driver: Driver = Driver.ETCD
    etcd_key_prefix: str = DEFAULT_PREFIX
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    debug: bool = False
    tunnel: str = ""
    ssh_username: str = DEFAULT_SSH_USERNAME
    ssh_timeout: float = DEFAULT_SSH_TIMEOUT
    known_hosts_file: str = DEFAULT_KNOWN_HOSTS_FILE
    strict_host_key_checking: bool = True
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    remote_fleetpy: str = "fleetpy"  # the command run as ``<it> fd-forward SOCKET`` on a tunnel host (api driver)

    def __post_init__(self) -> None:
        if not self.request_timeout > 0:
            raise UsageError(f"--request-timeout must be positive, got {self.request_timeout}")
        if not self.ssh_timeout > 0:
            raise UsageError(f"--ssh-timeout must be positive, got {self.ssh_timeout}")
        if self.key_file and not self.cert_file:
            raise UsageError("--key-file needs --cert-file")

    @property
    def endpoints(self) -> list[str]:
        """The comma-separated ``--endpoint`` value split into URLs (validation happens in the store)."""
        return [part.strip() for part in self.endpoint.split(",") if part.strip()]

    @property
    def tls(self) -> TLSConfig:
        return TLSConfig(ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file)

    @property
    def tunnel_address(self) -> str:
        """``--tunnel`` as ``host:port`` (fleet appends ``:22`` when there is no port)."""
        if not self.tunnel:
            return ""
        host = self.tunnel
        if host.startswith("["):  # [v6]:port or [v6]
            return host if "]:" in host else f"{host}:22"
        return host if ":" in host else f"{host}:22"
