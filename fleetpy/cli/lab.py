"""``fleetpy lab``: a multi-node cluster of real systemd nodes on one machine (stub, see the lab issue)."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """Run a local multi-node lab."""
