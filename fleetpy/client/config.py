"""``ClientConfig``: every global option of ``fleetpy`` (fleetctl's persistent flags) as one frozen value.

Pure. Built once by the CLI from the command line and ``FLEETCTL_*`` environment variables, then handed to
``fleetpy.client.connect``; nothing else reads flags or the environment (no globals, fleet's ``globalFlags``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fleetpy.errors import UsageError
from fleetpy.registry.endpoints import TLSConfig
from fleetpy.registry.keys import DEFAULT_PREFIX

DEFAULT_ENDPOINT = "http://127.0.0.1:2379,http://127.0.0.1:4001"
"""fleetctl's default is the API socket; until the HTTP API lands, fleetpy defaults to etcd's two classic ports."""

API_SOCKET = "unix:///var/run/fleet.sock"
"""fleet's API endpoint (``--driver=api`` with the default endpoint)."""

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


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """fleetctl's global flags (fleet-reference 1.1), typed. Defaults are fleetpy's."""

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
