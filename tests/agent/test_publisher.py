"""StatePublisher: states and heartbeats without TTL written on change only, republished after the machine
re-registered, heartbeats repaired from the job cache, removal of units no longer here, fleet's JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fleetpy.agent.publisher import StatePublisher
from fleetpy.model.records import UnitState
from fleetpy.registry.keys import Tree
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry
from fleetpy.systemd.fake import FakeUnitManager
from fleetpy.testing import FakeClock
from tests.agent.builders import ME, unit_file


@pytest.fixture
def world() -> Iterator[tuple[StatePublisher, Registry, FakeUnitManager, FakeClock]]:
    clock = FakeClock()
    registry = Registry(MemoryStore(clock=clock), "/p/")
    fake = FakeUnitManager()
    publisher = StatePublisher(registry=registry, manager=fake, machine_id=ME, clock=clock, legacy_delay=0.0)
    yield publisher, registry, fake, clock
    publisher.close(timeout=1)


def run(publisher: StatePublisher) -> None:
    publisher.poll()
    assert publisher.writer.flush(5)



def launch(publisher: StatePublisher, fake: FakeUnitManager, name: str) -> None:
    """``name`` loaded in the fake systemd, tracked as launched with its heartbeat, and published."""
    fake.load(name, unit_file())
    fake.reload()
    publisher.track(fake.units(), [name])
    publisher.heartbeat(name)
    run(publisher)

def test_nothing_is_polled_before_the_agent_said_what_it_owns(world: tuple) -> None:
    publisher, _, fake, _ = world
    publisher.poll()
    assert fake.count("states") == 0


def test_state_json_is_fleets(world: tuple) -> None:
    publisher, registry, fake, _ = world
    fake.load("a.service", unit_file())
    fake.reload()
    fake.start("a.service")
    publisher.track(fake.units(), ["a.service"])
    run(publisher)
    node = registry.store.get(registry.keys.state("a.service", ME))
    assert node is not None and node.ttl is None  # no TTL: the engine sweeps the states of a dead machine
    assert node.value == ('{"loadState":"loaded","activeState":"active","subState":"running","machineState":'
                          '{"ID":"' + ME + '","PublicIP":"","Metadata":null,"Capabilities":null,"Version":""},'
                          '"unitHash":"' + unit_file().hash + '"}')
    legacy = registry.store.get(registry.keys.legacy_state("a.service"))
    assert legacy is not None and legacy.value == node.value and legacy.ttl is None


def test_idle_publisher_writes_nothing_and_keys_never_expire(world: tuple) -> None:
    publisher, registry, fake, clock = world
    launch(publisher, fake, "a.service")
    index = registry.store.current_index()
    for _ in range(10):
        clock.advance(60)
        run(publisher)
    assert registry.store.current_index() == index  # ten idle minutes: not one write
    assert [s.name for s in registry.unit_states()] == ["a.service"]
    assert registry.store.get(registry.keys.job_state("a.service")).value == ME  # type: ignore[union-attr]


def test_republish_after_re_registration_writes_everything_again(world: tuple) -> None:
    publisher, registry, fake, _ = world
    fake.load("a.service", unit_file())
    fake.load("b.service", unit_file())
    fake.reload()
    fake.start("a.service")
    publisher.track(fake.units(), ["a.service"])
    publisher.heartbeat("a.service")
    run(publisher)
    registry.store.delete(registry.keys.tree(Tree.STATES), recursive=True)  # swept while the machine was away
    registry.store.delete(registry.keys.legacy_state("a.service"))
    registry.store.delete(registry.keys.job_state("a.service"))
    run(publisher)
    assert registry.unit_states() == []  # unchanged states are not rewritten on their own
    publisher.republish()
    run(publisher)
    assert [s.name for s in registry.unit_states()] == ["a.service", "b.service"]
    assert registry.store.get(registry.keys.legacy_state("a.service")) is not None
    assert registry.store.get(registry.keys.job_state("a.service")).value == ME  # type: ignore[union-attr]


def test_adopt_with_rewrite_rewrites_kept_states_and_removes_stale_ones(world: tuple) -> None:
    publisher, registry, fake, _ = world
    fake.load("a.service", unit_file())
    fake.reload()
    for name in ("a.service", "gone.service"):
        registry.save_unit_state(UnitState(name, ME, "loaded", "active", "running", unit_file().hash))
    index = registry.store.get(registry.keys.state("a.service", ME)).modified_index  # type: ignore[union-attr]
    publisher.adopt(rewrite=True)
    publisher.track(fake.units(), [])
    run(publisher)
    assert [s.name for s in registry.unit_states()] == ["a.service"]
    node = registry.store.get(registry.keys.state("a.service", ME))
    assert node is not None and node.modified_index > index


def test_verify_repairs_heartbeats_from_the_job_cache(world: tuple) -> None:
    publisher, registry, _, clock = world
    publisher.track({}, [])
    index = registry.store.current_index()
    for name in ("a.service", "g.service"):
        publisher.heartbeat(name, fresh=False)  # adopted: written only if the registry lacks it
    publisher.verify({"a.service": (ME, ME), "b.service": (ME, None)})
    assert publisher.writer.flush(5) and registry.store.current_index() == index
    # a's heartbeat gone, b's left by a previous run, c's another machine's, g (global) last written by another
    publisher.verify({"a.service": (ME, None), "b.service": (ME, ME), "c.service": ("other", "other"),
                      "g.service": (None, "other")})
    assert publisher.writer.flush(5)
    assert registry.store.get(registry.keys.job_state("a.service")).value == ME  # type: ignore[union-attr]
    assert registry.store.get(registry.keys.job_state("g.service")) is None  # never fought over
    registry.unit_heartbeat("b.service", ME)
    publisher.verify({"a.service": (ME, ME), "b.service": (ME, ME)})  # within the grace of the last look
    assert publisher.writer.flush(5)
    assert registry.store.get(registry.keys.job_state("b.service")) is not None
    clock.advance(6)
    publisher.verify({"a.service": (ME, ME), "b.service": (ME, ME)})
    assert publisher.writer.flush(5)
    assert registry.store.get(registry.keys.job_state("b.service")) is None


def test_clearing_never_deletes_another_machines_heartbeat_or_legacy_state(world: tuple) -> None:
    publisher, registry, fake, _ = world
    launch(publisher, fake, "a.service")
    other = UnitState("a.service", "other", "loaded", "active", "running", unit_file().hash)
    registry.save_unit_state(other)  # the unit moved: the other machine wrote the shared keys since
    registry.unit_heartbeat("a.service", "other")
    publisher.clear_heartbeat("a.service")
    fake.unload("a.service")
    publisher.track(fake.units(), [])
    run(publisher)
    assert registry.store.get(registry.keys.job_state("a.service")).value == "other"  # type: ignore[union-attr]
    assert [(s.name, s.machine_id) for s in registry.unit_states()] == [("a.service", "other")]
    assert registry.store.get(registry.keys.legacy_state("a.service")) is not None


def test_units_no_longer_owned_lose_their_state(world: tuple) -> None:
    publisher, registry, fake, _ = world
    for name in ("a.service", "b.service"):
        fake.load(name, unit_file())
    fake.reload()
    publisher.track(fake.units(), [])
    run(publisher)
    assert len(registry.unit_states()) == 2
    fake.unload("a.service")
    publisher.track(fake.units(), [])
    run(publisher)
    assert [s.name for s in registry.unit_states()] == ["b.service"]
    assert registry.store.get(registry.keys.legacy_state("a.service")) is None


def test_burst_polls_ask_only_for_the_units_acted_on_until_they_settle(world: tuple,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    publisher, registry, fake, _ = world
    for name in ("a.service", "b.service"):
        fake.load(name, unit_file())
    publisher.track(fake.units(), ["a.service"])
    asked: list[list[str]] = []
    real = fake.states
    monkeypatch.setattr(fake, "states", lambda names: asked.append(list(names)) or real(names))
    publisher.kick(["a.service"])
    publisher.poll(full=False)
    assert asked == [["a.service"]]  # a is launched but not active yet: still hot
    fake.start("a.service")
    publisher.poll(full=False)
    publisher.poll(full=False)
    assert asked[1:] == [["a.service"]]  # active: settled, not asked for again between full polls
    publisher.poll()
    assert asked[-1] == ["a.service", "b.service"]
    assert publisher.writer.flush(5) and len(registry.unit_states()) == 2


def test_the_legacy_copy_is_written_after_the_state_and_held_back() -> None:
    registry = Registry(MemoryStore(), "/p/")
    fake = FakeUnitManager()
    publisher = StatePublisher(registry=registry, manager=fake, machine_id=ME, legacy_delay=0.4)
    try:
        fake.load("a.service", unit_file())
        publisher.track(fake.units(), [])
        publisher.poll()
        deadline = time.monotonic() + 2
        while not registry.unit_states() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert registry.unit_states() and registry.store.get(registry.keys.legacy_state("a.service")) is None
        assert publisher.writer.flush(2)
        assert registry.store.get(registry.keys.legacy_state("a.service")) is not None
    finally:
        publisher.close(timeout=1)


def test_purge_removes_states_and_heartbeats(world: tuple) -> None:
    publisher, registry, fake, _ = world
    launch(publisher, fake, "a.service")
    assert publisher.purge(5)
    assert registry.unit_states() == [] and registry.store.get(registry.keys.job_state("a.service")) is None
