"""An agent wired to an in-memory registry and a FakeUnitManager, driven step by step (no threads but the
publisher's writer), plus a store wrapper that can play an unreachable etcd."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fleetpy.agent.agent import Agent, Outcome
from fleetpy.agent.publisher import StatePublisher
from fleetpy.errors import RegistryUnavailable
from fleetpy.model.records import JobState, MachineState, Unit
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.keys import Tree
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry
from fleetpy.systemd.fake import FakeUnitManager
from tests.agent.builders import ME

PREFIX = "/fleet-test/"


class FlakyStore:
    """A MemoryStore that raises RegistryUnavailable for every call while ``down`` is set; counts calls."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.down = False
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        target = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if name != "close":
                self.calls.append(name)
            if self.down and name != "close":
                raise RegistryUnavailable("etcd cluster is unavailable or misconfigured: connection refused")
            return target(*args, **kwargs)
        return call


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


class Harness:
    def __init__(self, *, machine_id: str = ME, metadata: dict[str, str] | None = None,
                 manager: FakeUnitManager | None = None, memory: MemoryStore | None = None) -> None:
        self.memory = memory or MemoryStore()
        self.store = FlakyStore(self.memory)
        self.registry = Registry(self.store, PREFIX)  # type: ignore[arg-type]
        self.fake = manager or FakeUnitManager()
        self.machine = MachineState(machine_id, public_ip="10.0.0.1", metadata=metadata or {})
        self.publisher = StatePublisher(registry=self.registry, manager=self.fake, machine_id=machine_id,
                                        legacy_delay=0.0)
        self.jobs = TreeCache(self.store, self.registry.keys.tree(Tree.JOB))  # type: ignore[arg-type]
        self.machine_tree = TreeCache(self.store, self.registry.keys.machine_dir(machine_id))  # type: ignore[arg-type]
        self.agent = Agent(registry=self.registry, manager=self.fake, publisher=self.publisher,
                           machine=lambda: self.machine, jobs=self.jobs, machine_tree=self.machine_tree)

    @property
    def machine_id(self) -> str:
        return self.machine.id

    # -- the world around the agent ---------------------------------------------------------------------
    def submit(self, unit: Unit, *, target: str | None = ME) -> None:
        self.registry.create_unit(unit)
        if target is not None:
            self.registry.schedule_unit(unit.name, target)

    def set_state(self, name: str, state: JobState) -> None:
        self.registry.set_target_state(name, state)

    # -- driving ------------------------------------------------------------------------------------------
    def outcomes(self) -> list[Outcome]:
        """Refresh the caches (as the watches would) and run one pass."""
        self.jobs.reload()
        self.machine_tree.reload()
        return self.agent.reconcile()

    def reconcile(self) -> list[str]:
        """One pass; "Kind unit" per task that was executed successfully."""
        return [f"{o.task.kind.value} {o.task.unit}".strip() for o in self.outcomes() if not o.skipped and not o.error]

    def publish(self) -> None:
        self.publisher.poll()
        assert self.publisher.writer.flush(5.0)

    def states(self) -> dict[str, tuple[str, str, str]]:
        return {s.name: (s.load_state, s.active_state, s.sub_state)
                for s in self.registry.unit_states(machine_id=self.machine_id)}

    def job_state(self, name: str) -> str | None:
        job = self.registry.job(name)
        return job.job_state if job is not None else None

    def close(self) -> None:
        self.publisher.close(timeout=1.0)
