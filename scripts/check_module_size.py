"""Fail when a module of the package grows past the agreed size (style: none past ~400 lines)."""

from __future__ import annotations

import pathlib
import sys

LIMIT = 450


def main(root: str) -> int:
    too_big = []
    for path in sorted(pathlib.Path(root).rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > LIMIT:
            too_big.append(f"{path}: {lines} lines (limit {LIMIT})")
    for line in too_big:
        print(line, file=sys.stderr)
    return 1 if too_big else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "fleetpy"))
