"""The Engine component, one pass at a time, over the in-memory store (no threads, no sleeping)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence

import pytest

from fleetpy.engine.engine import Engine
from fleetpy.engine.plan import Task, TaskKind
from fleetpy.model.records import JobState, MachineState, Unit
from fleetpy.model.unit import UnitFile
from fleetpy.registry.registry import Registry
from fleetpy.testing import FakeClock, MemoryStore
from tests.engine.builders import A, B, C


def submit(registry: Registry, name: str, xfleet: str = "", state: JobState = JobState.LAUNCHED) -> None:
    text = f"[Service]\nExecStart=/bin/sleep 1000\n[X-Fleet]\n{xfleet}\n"
    registry.create_unit(Unit(name, UnitFile.parse(text), state))


@pytest.fixture
def registry(clock: FakeClock) -> Registry:
    reg = Registry(MemoryStore(clock=clock), "/test/")
    for mid, role in ((A, "web"), (B, "db"), (C, "web")):
        reg.create_machine_state(MachineState(mid, metadata={"role": role}), ttl=60)
    return reg


def targets(registry: Registry) -> dict[str, str | None]:
    return {s.name: s.target_machine for s in registry.schedule()}


def test_schedules_and_logs_one_line_per_task(registry: Registry, clock: FakeClock,
                                              caplog: pytest.LogCaptureFixture) -> None:
    submit(registry, "web@1.service")
    submit(registry, "db.service", "MachineMetadata=role=db")
    caplog.set_level(logging.INFO, logger="fleetpy.engine")
    done = Engine(registry, A, clock=clock).reconcile_once()
    assert [(t.kind, t.unit, t.machine_id) for t in done] == [
        (TaskKind.SCHEDULE, "db.service", B), (TaskKind.SCHEDULE, "web@1.service", A)]
    assert targets(registry) == {"db.service": B, "web@1.service": A}
    lines = [r.getMessage() for r in caplog.records if r.name == "fleetpy.engine"]
    assert lines == ['engine: schedule db.service -> bbbb2222 reason="the only able machine"',
                     'engine: schedule web@1.service -> aaaa1111 reason="least loaded of 3 able machines"']


def test_reasons_written_for_units_that_cannot_go_anywhere_and_cleared_later(registry: Registry,
                                                                           clock: FakeClock) -> None:
    submit(registry, "gpu.service", "MachineMetadata=role=gpu")
    submit(registry, "side.service", "MachineOf=mongo.service")
    submit(registry, "ok.service")
    engine = Engine(registry, A, clock=clock)
    engine.reconcile_once()
    assert registry.reasons() == {"gpu.service": "no machine has role=gpu",
                                  "side.service": "peer mongo.service not scheduled (no such unit)"}
    assert targets(registry)["ok.service"] is not None
    submit(registry, "mongo.service")
    registry.set_machine_metadata(C, "role", "gpu")
    engine.reconcile_once()
    assert registry.reasons() == {}
    assert targets(registry)["gpu.service"] == C
    assert targets(registry)["side.service"] == targets(registry)["mongo.service"]


def test_unchanged_reasons_are_not_rewritten(registry: Registry, clock: FakeClock) -> None:
    submit(registry, "gpu.service", "MachineMetadata=role=gpu")
    engine = Engine(registry, A, clock=clock)
    engine.reconcile_once()
    index = registry.store.get(registry.keys.reason("gpu.service"))
    engine.reconcile_once()
    assert registry.store.get(registry.keys.reason("gpu.service")) == index


def test_a_second_engine_does_nothing_while_the_first_leads(registry: Registry, clock: FakeClock) -> None:
    leader, other = Engine(registry, A, clock=clock), Engine(registry, B, clock=clock)
    leader.reconcile_once()
    submit(registry, "x.service")
    assert other.reconcile_once() == []
    assert targets(registry) == {"x.service": None}
    assert [t.unit for t in leader.reconcile_once()] == ["x.service"]


def test_machine_gone_moves_its_units_once(registry: Registry, clock: FakeClock) -> None:
    for i in range(3):
        submit(registry, f"u{i}.service")
    engine = Engine(registry, A, clock=clock)
    engine.reconcile_once()
    on_b = [n for n, m in targets(registry).items() if m == B]
    registry.remove_machine_state(B)
    moved = engine.reconcile_once()
    assert [(t.kind, t.unit) for t in moved] == [(TaskKind.UNSCHEDULE, n) for n in on_b] + [
        (TaskKind.SCHEDULE, n) for n in on_b]
    assert engine.reconcile_once() == []
    registry.create_machine_state(MachineState(B), ttl=60)  # it comes back: nothing moves back
    assert engine.reconcile_once() == []


def test_a_lost_cas_skips_that_unit_and_goes_on(registry: Registry, clock: FakeClock,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    submit(registry, "a.service")
    submit(registry, "b.service")
    real = registry.schedule_units

    def racing(targets: Sequence[tuple[str, str]]) -> Sequence[bool]:
        registry.store.set(registry.keys.target("a.service"), B)  # another engine was first
        return real(targets)

    monkeypatch.setattr(registry, "schedule_units", racing)
    done = Engine(registry, A, clock=clock).reconcile_once()
    assert [t.unit for t in done] == ["b.service"]
    assert targets(registry)["a.service"] == B and "b.service" in targets(registry)  # a's target stays the other's


def test_missing_unit_body_skips_the_unit(registry: Registry, clock: FakeClock) -> None:
    submit(registry, "a.service")
    submit(registry, "b.service")
    ghost = json.dumps({"Name": "ghost.service", "UnitHash": [1] * 20})  # its body was never stored
    registry.store.set(registry.keys.job_object("ghost.service"), ghost)
    engine = Engine(registry, A, clock=clock)
    assert sorted(t.unit for t in engine.reconcile_once()) == ["a.service", "b.service"]


def test_disabled_engine_does_nothing(registry: Registry, clock: FakeClock) -> None:
    submit(registry, "a.service")
    assert Engine(registry, A, clock=clock, disable_engine=True).reconcile_once() == []
    assert registry.lease() is None


def test_lease_ttl_is_five_intervals() -> None:
    reg = Registry(MemoryStore(), "/t/")
    assert Engine(reg, A, reconcile_interval=2.0).lease_ttl == 10
    assert Engine(reg, A, reconcile_interval=0.2).lease_ttl == 1


def tick(engine: Engine, clock: FakeClock, seconds: float) -> list[Task]:
    """Advance time by engine ticks (the lease is renewed as the real loop would), collecting the tasks."""
    done: list[Task] = []
    for _ in range(round(seconds / engine.reconcile_interval)):
        clock.advance(engine.reconcile_interval)
        done.extend(engine.reconcile_once())
    return done


def test_most_machines_vanishing_at_once_holds_their_units(registry: Registry, clock: FakeClock) -> None:
    """etcd trouble expires every TTL together: do not stampede, give agents time to re-register."""
    for i in range(3):
        submit(registry, f"u{i}.service")
    engine = Engine(registry, A, clock=clock, mass_loss_hold=30)
    engine.reconcile_once()
    before = targets(registry)
    registry.remove_machine_state(B)
    registry.remove_machine_state(C)
    assert tick(engine, clock, 20) == []
    registry.create_machine_state(MachineState(B), ttl=60)  # B is back; C is still away, now a minority
    moved = tick(engine, clock, 2)
    assert [(t.kind, t.unit) for t in moved] == [(TaskKind.UNSCHEDULE, n) for n, m in before.items() if m == C] + [
        (TaskKind.SCHEDULE, n) for n, m in before.items() if m == C]


def test_held_units_move_after_the_hold(registry: Registry, clock: FakeClock) -> None:
    for i in range(3):
        submit(registry, f"u{i}.service")
    engine = Engine(registry, A, clock=clock, mass_loss_hold=30)
    engine.reconcile_once()
    registry.remove_machine_state(B)
    registry.remove_machine_state(C)
    assert tick(engine, clock, 28) == []
    assert set(targets(registry).values()) == {A, B, C}
    tick(engine, clock, 4)
    assert set(targets(registry).values()) == {A}


def test_run_follows_the_watch_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass runs on a relevant change, long before the periodic tick; heartbeats wake nothing."""
    registry = Registry(MemoryStore(), "/test/")
    registry.create_machine_state(MachineState(A), ttl=60)
    engine = Engine(registry, A, reconcile_interval=30.0, watch_timeout=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait(lambda: registry.lease() is not None and engine.passes >= 1)
        submit(registry, "x.service")
        wait(lambda: targets(registry) == {"x.service": A})
        time.sleep(0.3)
        passes = engine.passes
        for _ in range(5):
            registry.unit_heartbeat("x.service", A, ttl=60)
            registry.set_machine_state(MachineState(A), ttl=60)
        time.sleep(0.5)
        assert engine.passes == passes
    finally:
        stop.set()
        thread.join(timeout=5)
    assert registry.lease() is None  # released on a clean stop


def wait(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_periodic_passes_over_unchanged_caches_are_skipped() -> None:
    registry = Registry(MemoryStore(), "/test/")
    registry.create_machine_state(MachineState(A), ttl=60)
    submit(registry, "x.service")
    engine = Engine(registry, A, reconcile_interval=0.05, watch_timeout=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait(lambda: targets(registry) == {"x.service": A})
        time.sleep(0.3)
        passes = engine.passes
        time.sleep(0.5)  # ten ticks
        assert engine.passes == passes
        submit(registry, "y.service")
        wait(lambda: targets(registry).get("y.service") == A)
        assert engine.passes > passes
    finally:
        stop.set()
        thread.join(timeout=5)


def test_a_pass_longer_than_the_lease_renews_it_between_batches(registry: Registry, clock: FakeClock,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Scheduling thousands of units on a slow etcd outlives the lease TTL: the leader renews between write
    batches and finishes the pass, instead of stopping at the deadline of the renewal made before it."""
    for i in range(600):
        submit(registry, f"u{i:03}.service")
    real = registry.schedule_unit

    def slow(name: str, machine_id: str) -> None:
        clock.advance(0.01)  # 600 writes: 2.56 s per batch of 256, 6 s in all > the 4 s lease
        real(name, machine_id)

    monkeypatch.setattr(registry, "schedule_unit", slow)
    engine = Engine(registry, A, clock=clock, reconcile_interval=0.8)  # lease TTL 4 s
    done = engine.reconcile_once()
    assert len(done) == 600 and all(t is not None for t in targets(registry).values())
    lease = registry.lease()
    assert lease is not None and lease.machine_id == A and engine.leadership.leading()
