"""``fleetpy`` entry point: the click group and the registration of every command (skeleton)."""

from __future__ import annotations

import sys

import click

from fleetpy import __version__
from fleetpy.cli.lab import lab


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-v", message="fleetpy version %(version)s")
def cli() -> None:
    """fleetpy: a drop-in fleetctl for systemd clusters on etcd."""


cli.add_command(lab)


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="fleetpy", standalone_mode=True)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
