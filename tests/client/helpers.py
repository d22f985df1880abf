"""Client test helpers: a registry on MemoryStore, a waiter on a FakeClock whose sleep can run a callback."""

from __future__ import annotations

from collections.abc import Callable

from fleetpy.client.api import FleetClient
from fleetpy.client.report import RecordingReporter
from fleetpy.client.wait import Waiter
from fleetpy.model.records import MachineState, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry
from fleetpy.testing import FakeClock

M1 = "c7ed6cafe52543569dbc19ca848b3b1d"
M2 = "07c7d51f3c55453792355a6c01d3e3b0"
PLAIN = UnitFile.parse("[Service]\nExecStart=/bin/sleep 100\n")
GLOBAL = UnitFile.parse("[Service]\nExecStart=/bin/sleep 100\n\n[X-Fleet]\nGlobal=true\n")


class Env:
    def __init__(self) -> None:
        self.registry = Registry(MemoryStore())
        self.client = FleetClient(self.registry)
        self.report = RecordingReporter()
        self.clock = FakeClock()
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[int], None] | None = None
        self.waiter = Waiter(self.client, self.report, clock=self.clock, sleep=self._sleep)
        self.registry.create_machine_state(MachineState(M1, "10.0.0.1"), ttl=10**6)

    def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))

    def run_unit(self, name: str, uf: UnitFile = PLAIN, *, machine: str = M1, launched: bool = True,
                 active: str = "active") -> None:
        """What the engine and agent write for a unit placed on ``machine``."""
        self.registry.schedule_unit(name, machine)
        self.registry.save_unit_state(UnitState(name, machine, "loaded", active, "running", uf.hash), ttl=10**6)
        if launched:
            self.registry.unit_heartbeat(name, machine, ttl=10**6)
