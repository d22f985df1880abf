"""The host seam: which binaries exist, who we are, running commands, and processes we started.

I/O. ``Host`` is injectable (tests fake ``which`` and ``geteuid``); ``preflight`` turns every missing prerequisite
into one line naming the fix. Processes are identified by PID *and* start time, so a recycled PID is never
signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetpy.errors import LabError

GLOBAL_LOCK = "/run/lock/fleetpy-lab.lock"
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEMD_CANDIDATES = ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")

# binary -> the apt package that provides it (Debian 12)
REQUIRED: dict[str, str] = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "setsid": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "systemctl": "systemd",
    "systemd-run": "systemd",
    "etcd": "etcd-server",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
}


def _default_which(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:  # sbin is often missing from a user's PATH
        found = shutil.which(name, path="/usr/sbin:/sbin")
    return found


@dataclass(frozen=True, slots=True)
class Host:
    """What the lab asks of the machine; every field can be replaced in tests."""

    which: Callable[[str], str | None] = _default_which
    geteuid: Callable[[], int] = field(default=lambda: os.geteuid())
    systemd_candidates: Sequence[str] = SYSTEMD_CANDIDATES
    cgroup2_mounted: Callable[[], bool] = field(default=lambda: _has_cgroup2())

    def binary(self, name: str) -> str:
        path = self.which(name)
        if path is None:
            raise LabError(f"{name} not found: apt-get install {REQUIRED.get(name, name)}")
        return path

    def require_root(self) -> None:
        if self.geteuid() != 0:
            raise LabError("the lab needs root (namespaces, cgroups, bridges): run it with sudo or as root")

    def systemd(self) -> str:
        for path in self.systemd_candidates:
            if os.access(path, os.X_OK):
                return path
        raise LabError("systemd not found (/lib/systemd/systemd): apt-get install systemd")


def _has_cgroup2() -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(" - cgroup2 " in line for line in f)


def preflight(host: Host) -> None:
    """Raise one LabError line listing everything missing; creates nothing."""
    host.require_root()
    missing: list[str] = []
    for name, package in REQUIRED.items():
        if host.which(name) is None:
            missing.append(f"{name} not found: apt-get install {package}")
    try:
        host.systemd()
    except LabError as err:
        missing.append(str(err))
    if not host.cgroup2_mounted():
        missing.append("no cgroup2 hierarchy mounted (nodes need one): mount -t cgroup2 none /sys/fs/cgroup/unified")
    if not os.path.exists("/etc/machine-id"):
        missing.append("/etc/machine-id missing (nodes bind their own over it): systemd-machine-id-setup")
    if missing:
        raise LabError("; ".join(missing))


def run(argv: Sequence[str], *, check: bool = True, timeout: float | None = 30.0, input: str | None = None,
        env: Mapping[str, str] | None = None, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a host command; failures become LabError naming the command and its stderr."""
    try:
        proc = subprocess.run(
            list(argv), input=input, text=True, timeout=timeout, check=False, cwd="/",
            stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
            stdin=None if input is not None or not capture else subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )
    except FileNotFoundError as err:
        raise LabError(f"{argv[0]} not found: {err.strerror}") from err
    except subprocess.TimeoutExpired as err:
        raise LabError(f"`{' '.join(argv)}` timed out after {timeout} s") from err
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        last = detail[-1] if detail else "no output"
        raise LabError(f"`{' '.join(argv)}` exited {proc.returncode}: {last}")
    return proc


def node_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The minimal environment for commands run inside a node (the host's variables stay out)."""
    env = {"PATH": NODE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root"}
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    env.update(extra or {})
    return env


# -- processes we started ------------------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if the process is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass(frozen=True, slots=True)
class Proc:
    """A process we started: PID plus start time, written as ``"<pid> <starttime>"`` to a pid file."""

    pid: int
    started: int

    def alive(self) -> bool:
        return start_time(self.pid) == self.started

    def signal(self, sig: signal.Signals) -> bool:
        if not self.alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; returns once the process is gone (or a zombie)."""
        if not self.signal(signal.SIGTERM):
            return
        if wait_for(lambda: not self.alive(), timeout):
            return
        self.signal(signal.SIGKILL)
        wait_for(lambda: not self.alive(), 5.0)

    def save(self, path: Path) -> None:
        path.write_text(f"{self.pid} {self.started}\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Proc | None:
        try:
            parts = path.read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return None
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            return cls(int(parts[0]), int(parts[1]))
        return None

    @classmethod
    def of(cls, pid: int) -> Proc | None:
        started = start_time(pid)
        return None if started is None else cls(pid, started)


def spawn_detached(argv: Sequence[str], *, pid_file: Path, log: Path, timeout: float = 10.0) -> Proc:
    """Start ``argv`` in its own session, detached from us (``setsid -f``), and return it once its PID is known.

    The child writes its own PID (``echo $$``) before exec-ing ``argv``, so the PID is the program's, not setsid's.
    """
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    script = 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec "$@"'
    with open(log, "ab") as out:
        try:
            subprocess.run(["setsid", "-f", "/bin/sh", "-c", script, str(pid_file), *argv], stdin=subprocess.DEVNULL,
                           stdout=out, stderr=out, check=True, timeout=timeout, cwd="/")
        except (OSError, subprocess.SubprocessError) as err:
            raise LabError(f"could not start {argv[0]}: {err}") from err
    if not wait_for(lambda: pid_file.exists(), timeout):
        raise LabError(f"{argv[0]} did not start (no pid file after {timeout} s); see {log}")
    pid = int(pid_file.read_text(encoding="utf-8").split()[0])
    proc = Proc.of(pid)
    if proc is None:
        raise LabError(f"{argv[0]} exited at once; see {log}")
    proc.save(pid_file)
    return proc


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@contextlib.contextmanager
def global_lock(path: str = GLOBAL_LOCK) -> Iterator[None]:
    """Host-wide lock for picking subnets and managing /run/netns, so concurrent labs never race."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
