"""Per-node cgroups on the host: created under our own cgroup in every hierarchy, removed deepest first.

I/O on cgroupfs. ``parse_*`` helpers are pure. Works on hybrid hosts (cgroup v1 controllers plus cgroup2 at
``/sys/fs/cgroup/unified``, as on the reference machine) and on pure cgroup2 hosts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fleetpy.errors import LabError


@dataclass(frozen=True, slots=True)
class Mount:
    target: str
    fstype: str  # "cgroup" or "cgroup2"
    options: frozenset[str]  # super options; for v1 they name the controllers


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        target = fields[4].replace("\\040", " ")
        mounts.append(Mount(target, rest[0], frozenset(rest[2].split(","))))
    return mounts


def parse_proc_cgroup(text: str) -> list[tuple[str, str]]:
    """``ID:CONTROLLERS:PATH`` lines as (controllers, path); controllers is "" for the cgroup2 line."""
    out = []
    for line in text.splitlines():
        if line.strip():
            _, controllers, path = line.split(":", 2)
            out.append((controllers, path))
    return out


def hierarchy_dirs(mounts: Iterable[Mount], membership: Iterable[tuple[str, str]]) -> list[Path]:
    """The directory of each hierarchy we belong to (pure)."""
    mounts = list(mounts)
    dirs = []
    for controllers, path in membership:
        if controllers == "":
            match = next((m for m in mounts if m.fstype == "cgroup2"), None)
        else:
            wanted = set(controllers.split(","))
            match = next((m for m in mounts if m.fstype == "cgroup" and wanted <= m.options), None)
        if match is not None:
            dirs.append(Path(match.target) / path.lstrip("/"))
    return dirs


def own_dirs() -> list[Path]:
    # read /proc/self/cgroup once into memory: procfs regenerates it while it is read (lab-notes danger 8)
    membership = parse_proc_cgroup(Path("/proc/self/cgroup").read_text(encoding="utf-8"))
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text(encoding="utf-8"))
    return hierarchy_dirs(mounts, membership)


def create(name: str) -> list[Path]:
    """Create ``name`` under our cgroup in every hierarchy and return the new dirs (cgroup2 one first)."""
    made: list[Path] = []
    try:
        for parent in own_dirs():
            child = parent / name
            if child.exists():
                if populated(child):
                    raise LabError(f"cgroup {child} exists and holds processes: is the node still running?")
                remove([child])
            child.mkdir()
            made.append(child)
            for knob in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: a new child is empty and refuses tasks
                src, dst = parent / knob, child / knob
                if src.exists() and dst.exists() and not dst.read_text().strip():
                    dst.write_text(src.read_text())
    except OSError as err:
        remove(made)
        raise LabError(f"cannot create the node cgroup {name}: {err}") from err
    return sorted(made, key=lambda p: 0 if (p / "cgroup.events").exists() else 1)


def populated(path: Path) -> bool:
    """True while any process is in the cgroup or below it."""
    events = path / "cgroup.events"
    try:
        if events.exists():
            return "populated 1" in events.read_text()
        return any(procs(path))
    except FileNotFoundError:
        return False


def procs(path: Path) -> list[int]:
    """Every PID in the cgroup subtree."""
    pids: list[int] = []
    for root, _dirs, _files in os.walk(path):
        with contextlib.suppress(FileNotFoundError):
            pids.extend(int(p) for p in Path(root, "cgroup.procs").read_text().split())
    return pids


def remove(dirs: Iterable[Path], timeout: float = 5.0) -> None:
    """rmdir each tree deepest first (cgroupfs files cannot be unlinked); retries while the kernel lets go."""
    for top in dirs:
        deadline = time.monotonic() + timeout
        while top.exists():
            try:
                for root, subdirs, _files in os.walk(top, topdown=False):
                    for sub in subdirs:
                        with contextlib.suppress(FileNotFoundError):
                            os.rmdir(os.path.join(root, sub))
                os.rmdir(top)
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise LabError(f"cannot remove cgroup {top}: {err.strerror}") from err
                time.sleep(0.05)


def memory_bytes(dirs: Iterable[Path]) -> int | None:
    """Memory charged to the node: cgroup2 ``memory.current`` or v1 ``memory.usage_in_bytes``."""
    for path in dirs:
        for knob in ("memory.current", "memory.usage_in_bytes"):
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int((path / knob).read_text())
    return None
