"""``fleetpyd`` entry point (stub until the agent issue lands)."""

from __future__ import annotations

import sys

from fleetpy import __version__


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["version"]):
        print(f"fleetpyd version {__version__}")
        return 0
    print("usage: fleetpyd [--config PATH] [--version]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
