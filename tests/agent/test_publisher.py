"""StatePublisher: TTL refresh that recreates what expired, removal of units no longer here, fleet's JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetpy.agent.publisher import StatePublisher, refresh_period
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
    publisher = StatePublisher(registry=registry, manager=fake, machine_id=ME, ttl=30, clock=clock)
    yield publisher, registry, fake, clock
    publisher.close(timeout=1)


def run(publisher: StatePublisher) -> None:
    publisher.poll()
    assert publisher.writer.flush(5)


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
    assert node is not None and node.ttl == 30
    assert node.value == ('{"loadState":"loaded","activeState":"active","subState":"running","machineState":'
                          '{"ID":"' + ME + '","PublicIP":"","Metadata":null,"Capabilities":null,"Version":""},'
                          '"unitHash":"' + unit_file().hash + '"}')
    legacy = registry.store.get(registry.keys.legacy_state("a.service"))
    assert legacy is not None and legacy.value == node.value


def test_refresh_recreates_expired_states_and_heartbeats(world: tuple) -> None:
    publisher, registry, fake, clock = world
    fake.load("a.service", unit_file())
    fake.reload()
    publisher.track(fake.units(), ["a.service"])
    publisher.heartbeat("a.service")
    run(publisher)
    clock.advance(31)
    assert registry.unit_states() == [] and registry.store.get(registry.keys.job_state("a.service")) is None
    publisher.refresh()
    assert publisher.writer.flush(5)
    assert [s.name for s in registry.unit_states()] == ["a.service"]
    assert registry.store.get(registry.keys.job_state("a.service")).value == ME  # type: ignore[union-attr]
    clock.advance(20)
    publisher.refresh()
    assert publisher.writer.flush(5)
    clock.advance(20)  # 40 s after the first write, 20 s after the refresh
    assert [s.name for s in registry.unit_states()] == ["a.service"]


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


def test_purge_removes_states_and_heartbeats(world: tuple) -> None:
    publisher, registry, fake, _ = world
    fake.load("a.service", unit_file())
    fake.reload()
    publisher.track(fake.units(), ["a.service"])
    publisher.heartbeat("a.service")
    run(publisher)
    assert publisher.purge(5)
    assert registry.unit_states() == [] and registry.store.get(registry.keys.job_state("a.service")) is None


@pytest.mark.parametrize(("ttl", "period"), [(30, 24.0), (10, 8.0), (5, 3.0), (1, 0.6)])
def test_refresh_period_leaves_a_margin(ttl: int, period: float) -> None:
    assert refresh_period(ttl) == pytest.approx(period)
