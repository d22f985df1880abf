"""Leadership over the registry lease, with an in-memory store whose TTLs follow a FakeClock."""

from __future__ import annotations

import pytest

from fleetpy.engine.lease import Leadership
from fleetpy.errors import RegistryUnavailable
from fleetpy.registry.registry import Registry
from fleetpy.testing import FakeClock, MemoryStore

TTL = 10


@pytest.fixture
def registry(clock: FakeClock) -> Registry:
    return Registry(MemoryStore(clock=clock), "/test/")


def engine(registry: Registry, clock: FakeClock, machine_id: str, **kw: object) -> Leadership:
    return Leadership(registry, machine_id, ttl=TTL, clock=clock, renew_every=2, **kw)  # type: ignore[arg-type]


def test_first_takes_the_lease_others_do_not(registry: Registry, clock: FakeClock) -> None:
    a, b = engine(registry, clock, "a"), engine(registry, clock, "b")
    assert a.check() is True
    assert b.check() is False
    lease = registry.lease()
    assert lease is not None and (lease.machine_id, lease.version) == ("a", 1)


def test_renewal_keeps_it_and_is_rate_limited(registry: Registry, clock: FakeClock) -> None:
    a, b = engine(registry, clock, "a"), engine(registry, clock, "b")
    a.check()
    index = a.lease.index if a.lease else 0
    clock.advance(1)
    assert a.check() is True
    assert a.lease is not None and a.lease.index == index  # within renew_every: no request
    for _ in range(10):
        clock.advance(3)
        assert a.check() is True
        assert b.check() is False
    assert a.lease is not None and a.lease.index > index


def test_failover_when_the_leader_stops_renewing(registry: Registry, clock: FakeClock) -> None:
    a, b = engine(registry, clock, "a"), engine(registry, clock, "b")
    a.check()
    clock.advance(TTL - 1)
    assert b.check() is False
    assert a.leading() is True
    clock.advance(1)
    assert a.leading() is False  # a stops acting on its own once its lease may have expired
    assert b.check() is True
    assert a.check() is False  # a's CAS renew fails: the lease changed hands


def test_release_on_shutdown_hands_over_at_once(registry: Registry, clock: FakeClock) -> None:
    a, b = engine(registry, clock, "a"), engine(registry, clock, "b")
    a.check()
    a.release()
    assert registry.lease() is None
    assert b.check() is True


@pytest.mark.parametrize("old_value", ["old-machine", '{"MachineID":"old-machine","Version":0}'],
                         ids=["legacy-bare-id", "version-0-json"])
def test_steal_from_older_version_then_wait_out_its_ttl(registry: Registry, clock: FakeClock, old_value: str) -> None:
    registry.store.set(registry.keys.lease, old_value, ttl=6)
    a = engine(registry, clock, "a")
    assert a.check() is False  # stolen, but the old holder may act for 6 more seconds
    lease = registry.lease()
    assert lease is not None and lease.machine_id == "a"
    clock.advance(5)
    assert a.check() is False
    clock.advance(1)
    assert a.check() is True


def test_never_steal_from_same_or_newer_version(registry: Registry, clock: FakeClock) -> None:
    registry.store.set(registry.keys.lease, '{"MachineID":"new","Version":2}', ttl=6)
    assert engine(registry, clock, "a").check() is False
    registry.store.set(registry.keys.lease, '{"MachineID":"peer","Version":1}', ttl=6)
    assert engine(registry, clock, "a").check() is False
    lease = registry.lease()
    assert lease is not None and lease.machine_id == "peer"


def test_newer_cluster_engine_version_means_no_leading(registry: Registry, clock: FakeClock) -> None:
    a = engine(registry, clock, "a")
    assert a.check() is True
    registry.store.set(registry.keys.engine_version, "2")
    clock.advance(3)
    assert a.check() is False
    assert registry.lease() is None  # released for a newer engine to take


def test_engine_version_is_bumped_to_ours(registry: Registry, clock: FakeClock) -> None:
    registry.store.set(registry.keys.engine_version, "0")
    engine(registry, clock, "a").check()
    assert registry.engine_version() == 1


def test_disabled_engine_never_leads(registry: Registry, clock: FakeClock) -> None:
    assert engine(registry, clock, "a", disabled=True).check() is False
    assert registry.lease() is None


def test_own_lease_adopted_after_a_restart(registry: Registry, clock: FakeClock) -> None:
    engine(registry, clock, "a").check()
    assert engine(registry, clock, "a").check() is True


def test_unreachable_etcd_leader_acts_only_until_its_deadline(registry: Registry, clock: FakeClock,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    a = engine(registry, clock, "a")
    a.check()

    def down(*args: object, **kw: object) -> None:
        raise RegistryUnavailable("etcd cluster is unavailable")

    monkeypatch.setattr(registry, "ensure_engine_version", down)
    clock.advance(3)
    with pytest.raises(RegistryUnavailable):
        a.check()
    assert a.leading() is True
    clock.advance(TTL)
    assert a.leading() is False
