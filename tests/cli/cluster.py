"""Test helpers: the recorded 3-machine cluster of fleetctl-output.md written into a registry, a fake engine and
agent that act on target states, and a CLI runner over the real entry point."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from click.testing import CliRunner

from fleetpy.cli.main import cli
from fleetpy.model.records import JobState, MachineState, Unit, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry.registry import Registry

N1 = "c7ed6cafe52543569dbc19ca848b3b1d"
N2 = "07c7d51f3c55453792355a6c01d3e3b0"
N3 = "bd710cf41f0b4c9ea612f9eb8f900052"
MACHINES = (
    MachineState(N1, "127.0.0.11", {"disk": "ssd", "node": "n1", "role": "db"}, "1.0.0"),
    MachineState(N2, "127.0.0.12", {"disk": "ssd", "node": "n2", "role": "web"}, "1.0.0"),
    MachineState(N3, "127.0.0.13", {"disk": "hdd", "node": "n3", "role": "web"}, "1.0.0"),
)
TTL = 600
GLOBAL = "global"

# name -> (description, [X-Fleet] lines, placement: machine ID, GLOBAL or None, (active, sub) on its machines).
# The texts reproduce the recorded hashes (list-unit-files showed 7 hex digits of each).
DOC_UNITS: dict[str, tuple[str, str, str | None, tuple[str, str]]] = {
    "bad.service": ("Unknown X-Fleet key", "Bogus=1", N2, ("active", "running")),
    "db-only.service": ("Only on role=db", "MachineMetadata=role=db", N1, ("active", "running")),
    "db-sidekick.service": ("Sidekick, follows db-only.service", "MachineOf=db-only.service", N1,
                            ("active", "running")),
    "either.service": ("disk=hdd OR role=db (multiple values in one MachineMetadata line)",
                       'MachineMetadata="disk=hdd" "role=db"', None, ("", "")),
    "failing.service": ("Always fails", "", N3, ("failed", "failed")),
    "global-web.service": ("Global unit restricted to role=web", "Global=true\nMachineMetadata=role=web", GLOBAL,
                           ("active", "running")),
    "global.service": ("Global unit on every machine", "Global=true", GLOBAL, ("active", "running")),
    "hello.service": ("Hello sleeper (single unit test)", "", N1, ("active", "running")),
    "nowhere.service": ("Metadata that matches no machine", "MachineMetadata=role=cache", None, ("", "")),
    "or.service": ("node=n1 OR node=n3 (same key, several values)", 'MachineMetadata="node=n1" "node=n3"', N1,
                   ("active", "running")),
    "orphan-sidekick.service": ("MachineOf a unit that is not scheduled", "MachineOf=nowhere.service", None,
                                ("", "")),
    "pinned.service": ("Pinned by MachineID to node n3", f"MachineID={N3}", N3, ("active", "running")),
    "ssd-web.service": ("role=web AND disk=ssd", "MachineMetadata=role=web\nMachineMetadata=disk=ssd", N2,
                        ("active", "running")),
    "web@1.service": ("Web %i (one per web machine)", "MachineMetadata=role=web\nConflicts=web@*.service", N3,
                      ("active", "running")),
    "web@2.service": ("Web %i (one per web machine)", "MachineMetadata=role=web\nConflicts=web@*.service", N2,
                      ("active", "running")),
    "web@3.service": ("Web %i (one per web machine)", "MachineMetadata=role=web\nConflicts=web@*.service", None,
                      ("", "")),
}
CHATTY = ("Chatty unit that logs to the journal", "", N2, ("active", "running"))
EXEC_START = {
    "failing.service": "/bin/false",
    "chatty.service": "/bin/sh -c 'i=0; while true; do i=$((i+1)); "
                      "echo \"chatty tick $i on $(hostname)\"; sleep 2; done'",
}
UNIT_EXTRA = {"db-sidekick.service": "BindsTo=db-only.service\nAfter=db-only.service"}


def unit_text(description: str, xfleet: str = "", exec_start: str = "/bin/sleep infinity", unit_extra: str = "") -> str:
    extra = f"{unit_extra}\n" if unit_extra else ""
    text = f"[Unit]\nDescription={description}\n{extra}\n[Service]\nExecStart={exec_start}\n"
    return text + (f"\n[X-Fleet]\n{xfleet}\n" if xfleet else "")


def add_machines(registry: Registry, machines: Iterable[MachineState] = MACHINES) -> None:
    for machine in machines:
        registry.create_machine_state(machine, ttl=TTL)


def place(registry: Registry, name: str, uf: UnitFile, machine_id: str, active: str = "active",
          sub: str = "running", *, launched: bool = True) -> None:
    """What the engine and an agent would have written for a unit running on ``machine_id``."""
    registry.schedule_unit(name, machine_id)
    registry.save_unit_state(UnitState(name, machine_id, "loaded", active, sub, uf.hash), ttl=TTL)
    if launched:
        registry.unit_heartbeat(name, machine_id, ttl=TTL)


def doc_cluster(registry: Registry, *, chatty: bool = False, sleepers: str = "") -> None:
    """The recorded cluster. ``sleepers``: "" none, "inactive" (sleeper@ and sleeper@7 submitted), "loaded"
    (sleeper@7 loaded on n3, systemd still reporting it active: the moment after ``fleetctl stop``)."""
    add_machines(registry)
    units = dict(DOC_UNITS)
    if chatty:
        units["chatty.service"] = CHATTY
    for name, (description, xfleet, where, (active, sub)) in sorted(units.items()):
        uf = UnitFile.parse(unit_text(description, xfleet, EXEC_START.get(name, "/bin/sleep infinity"),
                                      UNIT_EXTRA.get(name, "")))
        registry.create_unit(Unit(name, uf, JobState.LAUNCHED))
        if where == GLOBAL:
            for machine in MACHINES:
                if "role=web" not in xfleet or machine.metadata["role"] == "web":
                    registry.save_unit_state(UnitState(name, machine.id, "loaded", active, sub, uf.hash), ttl=TTL)
        elif where is not None:
            place(registry, name, uf, where, active, sub)
        else:
            registry.set_reason(name, "no machine satisfies the unit's requirements")
    if sleepers:
        sleeper = UnitFile.parse(unit_text("Sleeper %i"))
        registry.create_unit(Unit("sleeper@.service", sleeper, JobState.INACTIVE))
        state = JobState.LOADED if sleepers == "loaded" else JobState.INACTIVE
        registry.create_unit(Unit("sleeper@7.service", sleeper, state))
        if sleepers == "loaded":
            place(registry, "sleeper@7.service", sleeper, N3, launched=False)


@dataclass
class FakeCluster:
    """A fake engine plus agents: every ``interval`` it schedules wanted units on the first machine not in
    ``unschedulable`` (writing a reason otherwise), publishes systemd states, heartbeats and unschedules, as fleetd
    would. Units in ``failing`` come up ``failed``."""

    registry: Registry
    machine_id: str = N1
    interval: float = 0.05
    unschedulable: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def step(self) -> None:
        reg = self.registry
        for unit in reg.units():
            job = reg.job(unit.name)
            if job is None:
                continue
            if unit.is_global:
                self._global(unit)
                continue
            if unit.target_state is JobState.INACTIVE:
                if job.target:
                    reg.clear_unit_heartbeat(unit.name)
                    reg.remove_unit_state(unit.name, job.target)
                    reg.unschedule_unit(unit.name, job.target)
                continue
            if job.target is None:
                if unit.name in self.unschedulable:
                    reg.set_reason(unit.name, "no machine has metadata role=nothing")
                    continue
                reg.schedule_unit(unit.name, self.machine_id)
                reg.clear_reason(unit.name)
                target = self.machine_id
            else:
                target = job.target
            launched = unit.target_state is JobState.LAUNCHED
            active, sub = ("failed", "failed") if unit.name in self.failing else ("active", "running")
            if not launched:
                active, sub = "inactive", "dead"
            reg.save_unit_state(UnitState(unit.name, target, "loaded", active, sub, unit.hash), ttl=TTL)
            if launched:
                reg.unit_heartbeat(unit.name, target, ttl=TTL)
            else:
                reg.clear_unit_heartbeat(unit.name)

    def _global(self, unit: Unit) -> None:
        for machine in self.registry.machines():
            if unit.target_state is JobState.INACTIVE:
                self.registry.remove_unit_state(unit.name, machine.id)
                continue
            active, sub = ("active", "running") if unit.target_state is JobState.LAUNCHED else ("inactive", "dead")
            self.registry.save_unit_state(UnitState(unit.name, machine.id, "loaded", active, sub, unit.hash), ttl=TTL)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:  # the test's registry prefix may be going away
                if self._stop.is_set():
                    return

    def __enter__(self) -> FakeCluster:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class Fleetpy:
    """Runs fleetpy against one etcd keyspace, in process (CliRunner) or as the installed script. With ``driver``
    "api", ``endpoint`` is the API server's and ``prefix`` the keyspace it serves (for the tests' raw checks)."""

    endpoint: str
    prefix: str
    driver: str = "etcd"

    def global_args(self) -> list[str]:
        if self.driver == "api":
            return ["--driver", "api", "--endpoint", self.endpoint]
        return ["--driver", "etcd", "--endpoint", self.endpoint, "--etcd-key-prefix", self.prefix]

    def env(self) -> dict[str, str]:
        """The same choices as FLEETCTL_* variables."""
        if self.driver == "api":
            return {"FLEETCTL_DRIVER": "api", "FLEETCTL_ENDPOINT": self.endpoint}
        return {"FLEETCTL_DRIVER": "etcd", "FLEETCTL_ENDPOINT": self.endpoint, "FLEETCTL_ETCD_KEY_PREFIX": self.prefix}

    def __call__(self, *args: str, env: dict[str, str] | None = None, cwd: str | None = None) -> Result:
        runner = CliRunner()
        old = os.getcwd()
        if cwd:
            os.chdir(cwd)
        try:
            result = runner.invoke(cli, [*self.global_args(), *args], env=env, catch_exceptions=False)
        finally:
            os.chdir(old)
        return Result(result.exit_code, result.stdout, result.stderr)

    def sh(self, *args: str, env: dict[str, str] | None = None, cwd: str | None = None,
           timeout: float = 60) -> Result:
        """The console script, as a user runs it."""
        script = pathlib.Path(sys.executable).parent / "fleetpy"
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run([str(script), *self.global_args(), *args], capture_output=True, text=True,
                              env=full_env, cwd=cwd, timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)
