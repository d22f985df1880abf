"""How fast a lost machine's units move, as behaviour (the timings themselves live in bench/): a lone failed
request does not hold a lost machine, an etcd outage does; a released or expired engine lease is taken over on
its watch event, not at the next periodic tick."""

from __future__ import annotations

import threading

import pytest

from fleetpy.engine.engine import Engine
from fleetpy.errors import RegistryUnavailable
from fleetpy.model.records import MachineState
from fleetpy.registry.registry import Registry
from fleetpy.testing import FakeClock, MemoryStore
from tests.engine.builders import A, B, C
from tests.engine.test_engine import submit, targets, wait


@pytest.fixture
def registry(clock: FakeClock) -> Registry:
    reg = Registry(MemoryStore(clock=clock), "/test/")
    for mid in (A, B, C):
        reg.create_machine_state(MachineState(mid), ttl=600)
    return reg


class Flaky:
    """Makes the engine's leadership check fail (etcd unreachable) while ``down``."""

    def __init__(self, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        real = registry.ensure_engine_version

        def check(*args: object, **kw: object) -> bool:
            if self.down:
                raise RegistryUnavailable("etcd cluster is unavailable")
            return real(*args, **kw)  # type: ignore[arg-type]
        monkeypatch.setattr(registry, "ensure_engine_version", check)


def placed(registry: Registry, engine: Engine) -> dict[str, str | None]:
    for i in range(6):
        submit(registry, f"u{i}.service")
    engine.reconcile_once()
    before = targets(registry)
    assert C in before.values()
    return before


def test_a_lone_failed_request_does_not_hold_a_lost_machine(registry: Registry, clock: FakeClock,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(registry, A, clock=clock, agent_ttl=3)
    before = placed(registry, engine)
    flaky = Flaky(registry, monkeypatch)
    flaky.down = True
    clock.advance(1.0)  # one request timing out (etcd_request_timeout)
    with pytest.raises(RegistryUnavailable):
        engine.reconcile_once()
    assert engine.trigger.wait(0)  # retried at once, not a tick later
    flaky.down = False
    clock.advance(0.1)
    engine.reconcile_once()
    registry.remove_machine_state(C)  # a genuine loss right after: its units move at once
    engine.reconcile_once()
    after = targets(registry)
    assert C not in after.values()
    assert {n for n in after if after[n] != before[n]} == {n for n, m in before.items() if m == C}


def test_machines_missing_after_an_outage_are_held(registry: Registry, clock: FakeClock,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """etcd down for longer than half the agents' TTL: their machines may have expired; the ones found missing
    afterwards keep their units while they re-register (fleet #1289), and move only after the hold."""
    engine = Engine(registry, A, clock=clock, agent_ttl=3, mass_loss_hold=30)
    before = placed(registry, engine)
    flaky = Flaky(registry, monkeypatch)
    flaky.down = True
    for retried_at_once in (True, False, False):  # only a streak's first failure is retried at once
        clock.advance(1.0)
        with pytest.raises(RegistryUnavailable):
            engine.reconcile_once()
        assert engine.trigger.wait(0) is retried_at_once
    registry.remove_machine_state(C)  # C's agent has not re-registered yet
    flaky.down = False
    clock.advance(1.0)
    assert engine.reconcile_once() == []
    assert targets(registry) == before
    for _ in range(16):  # ticks past the hold (the lease renewed as the loop would)
        clock.advance(2.0)
        engine.reconcile_once()
    assert C not in targets(registry).values()


def run(engine: Engine) -> tuple[threading.Event, threading.Thread]:
    """Start ``engine.run`` and return once it made its first check and follows ``lease/`` (so what happens next
    is not simply found by its first pass)."""
    checks: list[bool] = []
    check = engine.leadership.check

    def counted() -> bool:
        checks.append(True)
        return check()
    engine.leadership.check = counted  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    wait(lambda: bool(checks) and engine._lease_watch is not None and engine._lease_watch.loaded.is_set())
    return stop, thread


def test_a_released_lease_is_taken_over_at_once() -> None:
    """With a 60 s tick (and a 300 s lease), the leader's clean stop hands over on the lease's delete event."""
    registry = Registry(MemoryStore(), "/test/")
    for mid in (A, B):
        registry.create_machine_state(MachineState(mid), ttl=600)
    first = Engine(registry, A, reconcile_interval=60.0, watch_timeout=0.2)
    stop_a, thread_a = run(first)
    wait(lambda: (lease := registry.lease()) is not None and lease.machine_id == A)
    second = Engine(registry, B, reconcile_interval=60.0, watch_timeout=0.2)
    stop_b, thread_b = run(second)
    try:
        assert second.leadership.lease is None
        stop_a.set()
        wait(lambda: (lease := registry.lease()) is not None and lease.machine_id == B, timeout=10.0)
        thread_a.join(timeout=5)
        assert not thread_a.is_alive()
    finally:
        stop_a.set()
        stop_b.set()
        thread_b.join(timeout=5)


def test_an_expired_lease_is_taken_over_on_its_expiry() -> None:
    """A dead leader's lease expires: the next engine acts on the expire event, not at its next 60 s tick."""
    clock = FakeClock()
    registry = Registry(MemoryStore(clock=clock), "/test/")
    registry.create_machine_state(MachineState(B), ttl=600)
    assert registry.acquire_lease(A, 1, ttl=10) is not None  # A's engine, about to die
    second = Engine(registry, B, reconcile_interval=60.0, watch_timeout=0.2)
    stop, thread = run(second)
    try:
        assert second.leadership.lease is None
        clock.advance(11)  # the store notices the expiry on its next request (the watch's)
        wait(lambda: (lease := registry.lease()) is not None and lease.machine_id == B, timeout=10.0)
    finally:
        stop.set()
        thread.join(timeout=5)
