"""Machine presence: registration, duplicate machine-id, takeover of our own stale registration, refresh, leave."""

from __future__ import annotations

import threading
import time

import pytest

from fleetpy.agent.heart import DuplicateMachineError, Heart
from fleetpy.errors import RegistryError
from fleetpy.model.records import MachineState
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry
from fleetpy.testing import FakeClock
from tests.agent.builders import ME


def heart(registry: Registry, ip: str = "10.0.0.1", **kw: object) -> Heart:
    machine = MachineState(ME, public_ip=ip, metadata={"role": "web"}, version="0.1.0")
    return Heart(registry=registry, machine=lambda: machine, ttl=30, **kw)  # type: ignore[arg-type]


@pytest.fixture
def registry() -> Registry:
    return Registry(MemoryStore(), "/fleet-test/")


def test_register_publishes_fleets_machine_object(registry: Registry) -> None:
    heart(registry).register()
    node = registry.store.get(registry.keys.machine_object(ME))
    assert node is not None and node.ttl == 30
    assert node.value == ('{"ID":"' + ME + '","PublicIP":"10.0.0.1","Metadata":{"role":"web"},'
                          '"Capabilities":{"DISABLE_ENGINE":false,"GRPC":false},"Version":"0.1.0"}')


def test_duplicate_machine_id_is_refused_with_one_line(registry: Registry) -> None:
    heart(registry, "10.0.0.2").register()
    with pytest.raises(DuplicateMachineError) as info:
        heart(registry, "10.0.0.1", takeover=True).register()
    assert "already registered" in str(info.value) and "10.0.0.2" in str(info.value)
    assert "\n" not in str(info.value)


def test_same_ip_without_the_local_lock_is_refused(registry: Registry) -> None:
    heart(registry).register()
    with pytest.raises(DuplicateMachineError):
        heart(registry, takeover=False).register()


def test_own_stale_registration_is_taken_over(registry: Registry) -> None:
    heart(registry).register()
    heart(registry, takeover=True).register()
    heart(registry, "10.9.9.9", reclaim=True).register()
    machine = registry.machine(ME)
    assert machine is not None and machine.public_ip == "10.9.9.9"


def test_beat_refreshes_and_recreates_after_expiry() -> None:
    clock = FakeClock()
    registry = Registry(MemoryStore(clock=clock), "/fleet-test/")
    h = heart(registry)
    h.register()
    index = registry.store.get(registry.keys.machine_object(ME)).modified_index  # type: ignore[union-attr]
    clock.advance(20)
    h.beat()
    node = registry.store.get(registry.keys.machine_object(ME))
    assert node is not None and node.ttl == 30 and node.modified_index > index
    clock.advance(31)
    assert registry.machine(ME) is None
    h.beat()
    assert registry.machine(ME) is not None


def test_registering_again_after_expiry_calls_on_register() -> None:
    clock = FakeClock()
    registry = Registry(MemoryStore(clock=clock), "/fleet-test/")
    calls: list[str] = []
    h = heart(registry, on_register=lambda: calls.append("again"), clock=clock)
    h.register()
    assert h.created and calls == []  # the first registration: the publisher adopts instead
    clock.advance(20)
    h.beat()
    assert calls == []  # a refresh
    clock.advance(31)
    h.beat()
    assert calls == ["again"]
    again = heart(registry, takeover=True)
    again.register()
    assert not again.created  # took the live registration over: the publisher may trust what it finds


def test_changed_machine_state_is_rewritten() -> None:
    clock = FakeClock()
    registry = Registry(MemoryStore(clock=clock), "/fleet-test/")
    ips = iter(["10.0.0.1", "10.0.0.7"])
    current = {"ip": next(ips)}
    h = Heart(registry=registry, machine=lambda: MachineState(ME, public_ip=current["ip"]), ttl=30,
              state_every=60, clock=clock)
    h.register()
    current["ip"] = next(ips)
    h.beat()
    assert registry.machine(ME).public_ip == "10.0.0.1"  # type: ignore[union-attr]
    clock.advance(61)
    h.beat()
    assert registry.machine(ME).public_ip == "10.0.0.7"  # type: ignore[union-attr]


def test_leave_removes_the_machine(registry: Registry) -> None:
    h = heart(registry)
    h.register()
    h.leave()
    assert registry.machine(ME) is None
    h.leave()  # idempotent


def test_a_create_whose_answer_was_lost_is_recognised_on_retry(registry: Registry,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A read timeout on the create (a loaded etcd) leaves its outcome unknown; the retry finds the object: when it
    is exactly ours, it is our own, not a duplicate (the 1,000-agent simulation lost workers to this)."""
    real = registry.create_machine_state

    def applied_but_timed_out(machine: MachineState, ttl: int) -> None:
        real(machine, ttl)
        monkeypatch.setattr(registry, "create_machine_state", real)
        raise RegistryError("etcd PUT .../object failed (read timeout); outcome unknown")

    monkeypatch.setattr(registry, "create_machine_state", applied_but_timed_out)
    h = heart(registry)
    with pytest.raises(RegistryError):
        h.register()
    h.register()
    assert h.created and registry.machine(ME) == h.machine


def test_after_a_lost_answer_a_different_object_is_still_a_duplicate(registry: Registry,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def timed_out(machine: MachineState, ttl: int) -> None:
        raise RegistryError("read timeout; outcome unknown")

    other = heart(registry, "10.0.0.9")
    h = heart(registry)
    with monkeypatch.context() as patch:
        patch.setattr(registry, "create_machine_state", timed_out)
        with pytest.raises(RegistryError):
            h.register()
    other.register()
    with pytest.raises(DuplicateMachineError):
        h.register()


def test_the_first_beat_comes_after_a_random_part_of_the_period_then_every_period(registry: Registry) -> None:
    """Machines that registered together must not beat together for good: the first wait is ``jitter()`` of
    ttl/2 (ttl 2 s: every 1 s)."""
    machine = MachineState(ME, public_ip="10.0.0.1")
    beats: list[float] = []
    h = Heart(registry=registry, machine=lambda: machine, ttl=2, jitter=lambda: 0.1)
    h.register()
    original = h.beat
    started = time.monotonic()

    def beat() -> None:
        beats.append(time.monotonic() - started)
        original()

    h.beat = beat  # type: ignore[method-assign]
    stop = threading.Event()
    thread = threading.Thread(target=h.run, args=(stop,))
    thread.start()
    time.sleep(1.4)
    stop.set()
    thread.join(2)
    assert len(beats) == 2
    assert 0.1 <= beats[0] < 0.3 and 1.1 <= beats[1] < 1.35, beats
