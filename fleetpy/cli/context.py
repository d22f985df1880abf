"""``CliEnv``: what every command receives on the click context (the config, the client, the reporter).

Edge of the CLI. The client is connected lazily, on first use, so ``help``, ``version`` and ``verify`` never
touch etcd, and it is closed when the invocation ends. ``--tunnel`` goes through ``transport_factory``, by default
the SSH tunnel of ``fleetpy.ssh.tunnel`` (imported only when a tunnel is asked for).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from fleetpy.client.api import FleetClient
from fleetpy.client.config import ClientConfig
from fleetpy.client.connect import Transport, TransportFactory, connect
from fleetpy.client.lifecycle import Lifecycle


class ClickReporter:
    """The client's Reporter on click's streams (so CliRunner captures it)."""

    def out(self, line: str) -> None:
        click.echo(line)

    def err(self, line: str) -> None:
        click.echo(line, err=True)


def ssh_tunnel(config: ClientConfig) -> Transport:
    """The --tunnel transport: an SSH connection to the bastion that carries the etcd traffic."""
    from fleetpy.ssh.tunnel import transport_factory  # paramiko is loaded only when a tunnel is used

    return transport_factory(config)


@dataclass
class CliEnv:
    config: ClientConfig = field(default_factory=ClientConfig)
    transport_factory: TransportFactory | None = ssh_tunnel
    reporter: ClickReporter = field(default_factory=ClickReporter)
    _client: FleetClient | None = None

    def client(self) -> FleetClient:
        if self._client is None:
            self._client = connect(self.config, transport_factory=self.transport_factory)
        return self._client

    def lifecycle(self) -> Lifecycle:
        return Lifecycle(self.client(), self.reporter)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


pass_env = click.make_pass_decorator(CliEnv)
