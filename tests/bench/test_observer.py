"""``bench.observer.Observer`` follows the job and state trees by watch: scheduled, active and gone, including a
unit's whole directory removed at once (as ``destroy`` does), without etcd (``MemoryStore``)."""

from __future__ import annotations

from bench.common import wait_until
from bench.observer import Observer
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry

ACTIVE = '{"loadState":"loaded","activeState":"active","subState":"running"}'


def test_scheduled_active_and_gone_after_directories_go() -> None:
    store = MemoryStore()
    registry = Registry(store)
    keys = registry.keys
    observer = Observer(registry)
    try:
        names = {"a.service", "b.service"}
        for name in sorted(names):
            store.set(keys.job_object(name), "{}")
            store.set(keys.target(name), "m1")
            store.set(keys.state(name, "m1"), ACTIVE)
        assert wait_until(lambda: observer.scheduled(names) == 2 and observer.active(names) == 2, 5)
        store.delete(keys.job_dir("a.service"), recursive=True)
        store.delete(keys.states_dir("a.service"), recursive=True)
        assert wait_until(lambda: observer.scheduled(names) == 1 and observer.active(names) == 1, 5)
        assert not observer.none_left(names)
        assert observer.none_left({"a.service"})
        assert observer.machines_active("b.service") == 1
    finally:
        observer.close()
