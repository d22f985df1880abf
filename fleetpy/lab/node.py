"""One node's life: identity files, boot (cgroups + launcher), readiness, exec via nsenter, poweroff and kill.

I/O. A node is found through files in its directory: ``pid`` (the launcher, which becomes ``unshare``),
``init`` (the node's PID 1 as the host sees it) and ``cgroups`` (one dir per hierarchy, cgroup2 first). Liveness
is the cgroup2 ``populated`` flag, never ``kill -0`` (a dead ``unshare`` can linger as a zombie of the host's init).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleetpy.errors import LabError
from fleetpy.lab import cgroups
from fleetpy.lab.host import NODE_PATH, Host, Proc, node_env, run, spawn_detached, wait_for
from fleetpy.lab.state import LabPaths, NodeRecord, cgroup_name, read_text

READY_STATES = ("running", "degraded")
NSENTER_FLAGS = ("-m", "-p", "-u", "-i", "-n")


def new_machine_id() -> str:
    return uuid.uuid4().hex


def write_identity(paths: LabPaths, node: NodeRecord) -> None:
    """The files a node keeps across poweroff/start (created once, at ``up``)."""
    node_dir = paths.node(node.name)
    node_dir.mkdir(parents=True, exist_ok=True)
    (node_dir / "machine-id").write_text(node.machine_id + "\n", encoding="utf-8")
    (node_dir / "hostname").write_text(node.hostname + "\n", encoding="utf-8")
    (node_dir / "console.log").touch()


class Node:
    """Process-level handle on one node of one lab."""

    def __init__(self, lab: str, paths: LabPaths, record: NodeRecord) -> None:
        self.lab = lab
        self.paths = paths
        self.record = record
        self.dir = paths.node(record.name)

    @property
    def name(self) -> str:
        return self.record.name

    # -- where it is -----------------------------------------------------------------------------------------

    def cgroup_dirs(self) -> list[Path]:
        text = read_text(self.dir / "cgroups") or ""
        return [Path(line) for line in text.splitlines() if line.strip()]

    def running(self) -> bool:
        dirs = self.cgroup_dirs()
        return bool(dirs) and cgroups.populated(dirs[0])

    def init(self) -> Proc | None:
        """The node's PID 1 (host PID), if it is alive."""
        proc = Proc.load(self.dir / "init")
        return proc if proc is not None and proc.alive() else None

    def require_init(self) -> Proc:
        proc = self.init()
        if proc is None:
            raise LabError(f"{self.name} is not running: start it with `fleetpy lab node start {self.name}`")
        return proc

    # -- boot ------------------------------------------------------------------------------------------------

    def launch(self, host: Host, keep_paths: Sequence[str]) -> None:
        """Start the node (returns at once; ``wait_booted`` waits for systemd)."""
        if self.running():
            raise LabError(f"{self.name} is already running")
        self.cleanup()
        (self.dir / "init").unlink(missing_ok=True)
        dirs = cgroups.create(cgroup_name(self.lab, self.name))
        (self.dir / "cgroups").write_text("".join(f"{d}\n" for d in dirs), encoding="utf-8")
        argv = [
            "/bin/sh", str(self.paths.launcher), str(self.dir), self.record.netns,
            str(self.paths.node_init), host.systemd(), self.record.hostname, *keep_paths,
        ]
        spawn_detached(argv, pid_file=self.dir / "pid", log=self.dir / "launch.log")

    def _find_init(self) -> Proc | None:
        launcher = Proc.load(self.dir / "pid")
        if launcher is None or not launcher.alive():
            return None
        try:
            comm = Path(f"/proc/{launcher.pid}/comm").read_text().strip()
            children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
        except FileNotFoundError:
            return None
        if comm != "unshare" or not children:
            return None
        child = int(children[0])
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() != "systemd":
                return None
        except FileNotFoundError:
            return None
        return Proc.of(child)

    def wait_booted(self, timeout: float = 60.0) -> None:
        """Wait until the node's systemd says ``running`` or ``degraded``; fail fast if the node dies."""
        launcher = Proc.load(self.dir / "pid")
        last = "not started"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            init = self.init()
            if init is None:
                init = self._find_init()
                if init is not None:
                    init.save(self.dir / "init")
            if init is not None:
                last = self.system_state()
                if last in READY_STATES:
                    return
            elif launcher is None or not launcher.alive():
                raise LabError(f"{self.name} died while booting{self._log_tail()}")
            time.sleep(0.05)
        raise LabError(f"{self.name} did not boot within {timeout:.0f} s (system {last}){self._log_tail()}")

    def _log_tail(self) -> str:
        lines = (read_text(self.dir / "launch.log") or "").splitlines()[-3:]
        return f"; launch.log: {' | '.join(lines)}" if lines else ""

    def system_state(self) -> str:
        proc = self.exec(["systemctl", "is-system-running"], timeout=10, require=False)
        return (proc.stdout or "").strip() or f"exit {proc.returncode}"

    # -- inside ----------------------------------------------------------------------------------------------

    def nsenter_argv(self, argv: Sequence[str], init: Proc | None = None) -> list[str]:
        init = init or self.require_init()
        return ["nsenter", "-t", str(init.pid), *NSENTER_FLAGS, "--", *argv]

    def exec(self, argv: Sequence[str], *, check: bool = False, timeout: float | None = 60.0,
             input: str | None = None, env: Mapping[str, str] | None = None, capture: bool = True,
             require: bool = True) -> subprocess.CompletedProcess[str]:
        init = self.require_init() if require else (self.init() or self._find_init())
        if init is None:
            return subprocess.CompletedProcess(list(argv), 255, "", f"{self.name} is not running")
        full = self.nsenter_argv(argv, init)
        proc = run(full, check=False, timeout=timeout, input=input, env=node_env(env), capture=capture)
        proc.args = list(argv)
        if check and proc.returncode != 0:
            last = (proc.stderr or proc.stdout or "").strip().splitlines()
            raise LabError(f"{self.name}: `{' '.join(argv)}` exited {proc.returncode}: "
                           f"{last[-1] if last else 'no output'}")
        return proc

    def systemd_run(self, unit: str, argv: Sequence[str], *, properties: Sequence[str] = (),
                    env: Mapping[str, str] | None = None) -> None:
        """Start ``argv`` as a transient service inside the node (so it lives in the node's cgroups)."""
        cmd = ["systemd-run", f"--unit={unit}", "--quiet"]
        cmd += [f"--property={p}" for p in properties]
        cmd += [f"--setenv={k}={v}" for k, v in sorted((env or {}).items())]
        self.exec([*cmd, *argv], check=True, timeout=30)

    # -- stop ------------------------------------------------------------------------------------------------

    def request_poweroff(self) -> bool:
        """Ask the node's systemd to power off (returns at once); False if it is not running. A systemd too busy
        to answer within 10 s counts as asked: ``poweroff`` then waits and SIGKILLs it, as for a slow shutdown."""
        init = self.init()
        if init is None:
            return False
        try:
            self.exec(["systemctl", "start", "--no-block", "--job-mode=replace-irreversibly", "poweroff.target"],
                      timeout=10, require=False)
        except LabError:
            pass  # timed out (seen with 1,000 units on a loaded host): the wait-then-kill in poweroff() follows
        return True

    def poweroff(self, timeout: float = 15.0, *, requested: bool = False) -> None:
        """Clean shutdown (poweroff.target); SIGKILL of PID 1 if it does not finish in ``timeout``.

        A node without a systemd to ask (caught half-way through its boot) is killed at once.
        """
        if not requested:
            requested = self.request_poweroff()
        if not requested and (self.running() or self._launcher_alive()):
            self.kill()
        elif wait_for(lambda: not self.running() and not self._launcher_alive(), timeout):
            self.cleanup()
        else:
            self.kill()

    def _launcher_alive(self) -> bool:
        launcher = Proc.load(self.dir / "pid")
        return launcher is not None and launcher.alive()

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the node's PID 1: the kernel kills everything in its PID namespace (a power cut)."""
        init = self.init() or self._find_init()
        if init is not None:
            init.signal(signal.SIGKILL)
        if not wait_for(lambda: not self.running(), timeout):
            # last resort (e.g. a node caught half-way through its boot): every process in the node's own
            # cgroups, and its launcher, is one we started
            launcher = Proc.load(self.dir / "pid")
            if launcher is not None:
                launcher.signal(signal.SIGKILL)
            for pid in cgroups.procs(self.cgroup_dirs()[0]) if self.cgroup_dirs() else []:
                proc = Proc.of(pid)
                if proc is not None:
                    proc.signal(signal.SIGKILL)
            if not wait_for(lambda: not self.running(), timeout):
                raise LabError(f"{self.name} did not die after SIGKILL")
        self.cleanup()

    def cleanup(self) -> None:
        """Remove a stopped node's cgroups and runtime files (identity files stay)."""
        if self.running():
            raise LabError(f"{self.name} is still running")
        cgroups.remove(self.cgroup_dirs())
        for name in ("cgroups", "init", "pid"):
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()


__all__ = ["NODE_PATH", "READY_STATES", "Node", "new_machine_id", "write_identity"]
