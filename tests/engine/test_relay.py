"""The relay's routing (pure, table-driven) and ``Relay.send`` over an in-memory store: which machine gets which
unit, resets first, the last message to a machine a unit left, and the message codec."""

from __future__ import annotations

import threading

import pytest

from fleetpy.engine.relay import EVERYONE, Relay, concerned, route
from fleetpy.errors import RegistryError
from fleetpy.model.records import JobState
from fleetpy.registry import relayed
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.decode import JobRecord
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry
from fleetpy.testing import MemoryStore
from tests.agent.builders import unit
from tests.agent.harness import wait_until
from tests.engine.builders import A, B, C, D

L = JobState.LAUNCHED
ALL = frozenset({A, B, C})


def record(target: str | None = None, job_state: str | None = None) -> JobRecord:
    return JobRecord("u.service", "h" * 40, L, target, job_state)


@pytest.mark.parametrize(("job", "is_global", "expected"), [
    (None, False, set()),
    (record(), False, set()),  # unscheduled, not global: nobody's concern until the engine places it
    (record(A), False, {A}),
    (record(A, B), False, {A, B}),  # moved from B: B clears its heartbeat
    (record(None, B), False, {B}),
    (record(), True, {EVERYONE}),
])
def test_concerned(job: JobRecord | None, is_global: bool, expected: set[str]) -> None:
    assert concerned(job, is_global) == expected


@pytest.mark.parametrize(("changed", "sent", "listeners", "expected"), [
    ({"u": {A}}, {}, ALL, {A: ["u"]}),
    ({"u": {A}}, {}, frozenset({B}), {}),  # A does not listen
    ({"u": {B}}, {"u": {A}}, ALL, {A: ["u"], B: ["u"]}),  # moved: the old machine hears of it one last time
    ({"u": set()}, {"u": {A}}, ALL, {A: ["u"]}),  # destroyed
    ({"g": {EVERYONE}}, {}, ALL, {A: ["g"], B: ["g"], C: ["g"]}),
    ({"g": set()}, {"g": {EVERYONE}}, frozenset({A, D}), {A: ["g"], D: ["g"]}),  # D listens since: it hears too
    ({"b": {A}, "a": {A}}, {}, ALL, {A: ["a", "b"]}),
])
def test_route(changed: dict[str, set[str]], sent: dict[str, set[str]], listeners: frozenset[str],
               expected: dict[str, list[str]]) -> None:
    assert route({k: frozenset(v) for k, v in changed.items()}, {k: frozenset(v) for k, v in sent.items()},
                 listeners) == expected


class Cluster:
    def __init__(self, *listening: str) -> None:
        self.store = MemoryStore()
        self.registry = Registry(self.store, "/test/")
        self.jobs = TreeCache(self.store, self.registry.keys.tree(Tree.JOB))
        for machine in listening:
            self.store.set(self.registry.keys.inbox(machine), relayed.LISTENING)
        self.relay = Relay(self.registry, A, term="t1")
        self.globals: set[str] = set()

    def send(self, machines: tuple[str, ...] = (A, B, C)) -> int:
        self.jobs.reload()
        return self.relay.send(self.jobs, machines, self.is_global)

    def is_global(self, name: str, _job: JobRecord) -> bool:
        return name in self.globals

    def inbox(self, machine: str) -> relayed.Relayed | None:
        node = self.store.get(self.registry.keys.inbox(machine))
        return relayed.decode(node.value) if node is not None and node.value else None


def test_send_resets_the_listeners_then_relays_what_concerns_each() -> None:
    cluster = Cluster(B, C)  # A leads (no message to itself); D does not listen
    registry = cluster.registry
    registry.create_unit(unit("x.service", L))
    assert cluster.send((A, B, C, D)) == 2
    first = cluster.inbox(B)
    assert first is not None and first.reset and first.source == (A, "t1") and cluster.inbox(C) is not None
    assert cluster.store.get(registry.keys.inbox(D)) is None and cluster.store.get(registry.keys.inbox(A)) is None
    registry.schedule_unit("x.service", B)
    assert cluster.send() == 1
    message = cluster.inbox(B)
    assert message is not None and not message.reset
    fields = message.units["x.service"]
    assert fields is not None and fields["target"][0] == B and fields["target-state"][0] == "launched"
    assert set(fields) == {"object", "target", "target-state"}
    registry.unit_heartbeat("x.service", B)
    assert cluster.send() == 1
    message = cluster.inbox(B)
    assert message is not None and message.units["x.service"] is not None
    assert message.units["x.service"]["job-state"][0] == B  # type: ignore[index]
    registry.destroy_unit("x.service")
    assert cluster.send() == 1
    message = cluster.inbox(B)
    assert message is not None and message.units == {"x.service": None}
    assert cluster.send() == 0  # nothing changed


def test_a_machine_seen_later_is_reset_and_a_failed_write_is_owed_a_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(B)
    cluster.send((A, B))
    cluster.store.set(cluster.registry.keys.inbox(C), relayed.LISTENING)
    cluster.registry.create_unit(unit("g.service", L))
    cluster.globals.add("g.service")
    assert cluster.send((A, B, C)) == 2
    reset, units = cluster.inbox(C), cluster.inbox(B)
    assert reset is not None and reset.reset and units is not None and list(units.units) == ["g.service"]

    def broken(_groups: object) -> None:
        raise RegistryError("etcd cluster is unavailable")
    monkeypatch.setattr(cluster.store, "set_many", broken)
    cluster.registry.set_target_state("g.service", JobState.LOADED)
    assert cluster.send((A, B, C)) == 0
    monkeypatch.undo()
    assert cluster.send((A, B, C)) == 2
    assert all((m := cluster.inbox(x)) is not None and m.reset for x in (B, C))


def test_messages_are_chunked() -> None:
    cluster = Cluster(B)
    cluster.send((A, B))
    for i in range(450):
        cluster.registry.create_unit(unit(f"u{i:03}.service", L))
    cluster.registry.schedule_units([(f"u{i:03}.service", B) for i in range(450)])
    assert cluster.send((A, B)) == 3  # 200 + 200 + 50


@pytest.mark.parametrize("raw", ["[]", "nope", '{"Leader":"a","Term":"t"}', '{"Leader":"a","Term":"t","Index":1,'
                                                                            '"Units":{"u":{"target":["x"]}}}'])
def test_an_unreadable_message_is_a_registry_error(raw: str) -> None:
    with pytest.raises(RegistryError):
        relayed.decode(raw)


def test_messages_round_trip() -> None:
    message = relayed.Relayed(A, "t", 7, units={"u": {"target": (B, 5)}, "v": None})
    assert relayed.decode(relayed.encode(message)) == message
    assert relayed.decode(relayed.LISTENING) is None


def test_run_relays_on_each_trigger_in_order() -> None:
    cluster = Cluster(B)
    stop = threading.Event()
    cluster.jobs.on_change = lambda _event: cluster.relay.trigger.fire()
    threads = [threading.Thread(target=cluster.jobs.run, args=(stop,), daemon=True),
               threading.Thread(target=cluster.relay.run, args=(stop,), daemon=True,
                                kwargs={"jobs": cluster.jobs, "machines": lambda: (A, B),
                                        "is_global": cluster.is_global, "interval": 30.0})]
    for thread in threads:
        thread.start()
    try:
        assert wait_until(lambda: (m := cluster.inbox(B)) is not None and m.reset)
        for i in range(3):
            cluster.registry.create_unit(unit(f"u{i}.service", L))
            cluster.registry.schedule_unit(f"u{i}.service", B)
        assert wait_until(lambda: (m := cluster.inbox(B)) is not None and "u2.service" in m.units)
    finally:
        stop.set()
        cluster.relay.trigger.fire()


def test_run_spaces_out_only_passes_that_wrote() -> None:
    """With a 30 s gap after a write: passes that wrote nothing (no listener yet; a unit's first write, which
    concerns no machine) hold nothing back, so B's reset goes out as soon as B is live; the pass after it waits
    the gap."""
    cluster = Cluster(B)
    stop = threading.Event()
    cluster.jobs.on_change = lambda _event: cluster.relay.trigger.fire()
    calls: list[int] = []
    send = cluster.relay.send
    cluster.relay.send = lambda *a: calls.append(n := send(*a)) or n  # type: ignore[method-assign]
    live = [A]
    kwargs = {"jobs": cluster.jobs, "machines": lambda: tuple(live), "is_global": cluster.is_global,
              "interval": 60.0, "min_gap": 30.0}
    threads = [threading.Thread(target=cluster.jobs.run, args=(stop,), daemon=True),
               threading.Thread(target=cluster.relay.run, args=(stop,), daemon=True, kwargs=kwargs)]
    for thread in threads:
        thread.start()
    try:
        assert wait_until(lambda: len(calls) >= 1 and cluster.jobs.loaded.is_set())
        cluster.registry.create_unit(unit("u.service", L))
        assert wait_until(lambda: len(calls) >= 2)
        live.append(B)
        cluster.registry.schedule_unit("u.service", B)
        assert wait_until(lambda: (m := cluster.inbox(B)) is not None and m.reset)
        assert wait_until(lambda: calls[-1] == 1)
        count = len(calls)
        assert set(calls[:-1]) == {0}
        cluster.registry.set_target_state("u.service", JobState.INACTIVE)
        assert not wait_until(lambda: len(calls) > count, timeout=0.5)  # held back by the gap after the reset
    finally:
        stop.set()
        cluster.relay.trigger.fire()
