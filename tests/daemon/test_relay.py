"""Daemons whose agents take their job records from the leader's relay (``job_relay``), against the in-memory
store and a real etcd: units reach the machines they are scheduled to and nothing else, stops and destroys
arrive, heartbeats are not rewritten in a loop, the relay follows a new leader, and an agent falls back to its
own watch of ``job/`` when the lease holder relays nothing (a real fleet engine, or a dead leader)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetpy.agent.feed import Mode
from fleetpy.daemon import server as server_module
from fleetpy.daemon.config import Config
from fleetpy.daemon.server import Server
from fleetpy.model.records import JobState
from fleetpy.registry import relayed
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import KVStore
from fleetpy.systemd.fake import FakeUnitManager
from tests.agent.builders import unit
from tests.agent.harness import wait_until

A, B, C, D = ("a" + str(i) * 31 for i in range(1, 5))
L = JobState.LAUNCHED


class Daemon:
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.fake = srv.manager
        assert isinstance(self.fake, FakeUnitManager)
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=srv.run, args=(self.stop,), kwargs={"ready": self.ready.set},
                                       daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    @property
    def mode(self) -> Mode:
        assert self.srv.feed is not None
        return self.srv.feed.mode

    def running(self) -> set[str]:
        assert isinstance(self.fake, FakeUnitManager)
        return {name for name, (active, _) in dict(self.fake.active).items() if active == "active"}

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def cluster(store: KVStore, etcd_prefix: str, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(machine_id: str, *, engine: bool = False, **options: object) -> Daemon:
        config = Config(etcd_key_prefix=etcd_prefix, units_directory=str(tmp_path / machine_id),
                        public_ip="10.0.0.1", agent_ttl=5.0, engine_reconcile_interval=0.2,
                        disable_engine=not engine, **options)  # type: ignore[arg-type]
        srv = server_module.build(config, store=store, manager=FakeUnitManager(), machine_id=machine_id,
                                  lock=False)
        daemon = Daemon(srv)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop.set()
    for daemon in started:
        daemon.thread.join(30)


def where(registry: Registry, name: str) -> str | None:
    job = registry.job(name)
    return job.target if job is not None else None


def test_agents_run_what_the_relay_brings_and_only_that(cluster: Callable[..., Daemon], store: KVStore,
                                                        etcd_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetpy")
    registry = Registry(store, etcd_prefix)
    leader = cluster(A, engine=True)
    others = {B: cluster(B), C: cluster(C)}
    for daemon in others.values():
        daemon.srv.publisher.verify_grace = 0.3  # a missing job-state is repaired after 0.3 s, not 5 s
    assert wait_until(lambda: registry.lease() is not None)
    assert wait_until(lambda: all(d.mode is Mode.RELAY for d in others.values()), timeout=10)
    assert leader.mode is Mode.WATCH  # the leader's engine reads the same copy: it follows the whole tree
    names = [f"u{i}.service" for i in range(9)]
    for name in names:
        registry.create_unit(unit(name, L))
    daemons = {A: leader, **others}

    def placed() -> bool:
        return all(name in daemons[target].running() for name in names
                   if (target := where(registry, name)) is not None) and all(where(registry, n) for n in names)

    assert wait_until(placed, timeout=20)
    for machine, daemon in daemons.items():
        assert daemon.running() == {n for n in names if where(registry, n) == machine}
    assert wait_until(lambda: all((job := registry.job(n)) is not None and job.job_state == job.target
                                  for n in names), timeout=10)
    for daemon in others.values():
        assert daemon.srv.agent.jobs.paused  # no watch of job/ on these machines

    on_b = sorted(n for n in names if where(registry, n) == B)
    on_c = sorted(n for n in names if where(registry, n) == C)
    assert on_b and on_c
    registry.set_target_state(on_b[0], JobState.LOADED)  # a stop
    registry.destroy_unit(on_c[0])
    assert wait_until(lambda: on_b[0] not in others[B].running() and on_c[0] not in others[C].fake.files,
                      timeout=10)
    assert on_b[0] in others[B].fake.files  # loaded, not running
    assert all(d.mode is Mode.RELAY for d in others.values())
    assert others[B].srv.feed is not None and others[B].srv.feed.switches == 1
    for _ in range(3):  # passes past the verify grace: the relayed job-states are what they check
        time.sleep(0.4)
        for daemon in others.values():
            daemon.srv.agent.trigger.fire()
    repairs = [r.getMessage() for r in caplog.records if "heartbeat of" in r.getMessage()]
    assert repairs == []


def test_the_relay_follows_a_new_leader(cluster: Callable[..., Daemon], store: KVStore, etcd_prefix: str) -> None:
    registry = Registry(store, etcd_prefix)
    first = cluster(A, engine=True)
    assert wait_until(lambda: (lease := registry.lease()) is not None and lease.machine_id == A)
    second = cluster(D, engine=True)
    agent = cluster(B)
    assert wait_until(lambda: agent.mode is Mode.RELAY and second.mode is Mode.RELAY, timeout=10)
    first.finish()  # a clean stop releases the lease: D takes over and relays
    assert wait_until(lambda: (lease := registry.lease()) is not None and lease.machine_id == D, timeout=10)
    assert wait_until(lambda: second.mode is Mode.WATCH, timeout=5)
    feed = agent.srv.feed
    assert feed is not None
    assert wait_until(lambda: agent.mode is Mode.RELAY and feed._trusted is not None and feed._trusted[0] == D,
                      timeout=10)
    registry.create_unit(unit("x.service", L, MachineID=B))
    assert wait_until(lambda: "x.service" in agent.running(), timeout=10)


def test_without_a_relaying_leader_an_agent_follows_the_job_tree(cluster: Callable[..., Daemon], store: KVStore,
                                                                 etcd_prefix: str) -> None:
    """The lease held by an engine that relays nothing (a real fleet engine, here written by hand): targets
    written by that engine still reach the agent, through its own watch. Then a relay message names a leader
    that is not the lease holder: not trusted. Then it is the holder: trusted; when its lease goes (a dead
    leader's expires), the agent follows the tree again."""
    registry = Registry(store, etcd_prefix)
    assert registry.acquire_lease(D, 1, ttl=60) is not None
    agent = cluster(B)
    registry.create_unit(unit("a.service", L))
    registry.schedule_unit("a.service", B)
    assert wait_until(lambda: "a.service" in agent.running(), timeout=10)
    assert agent.mode is Mode.WATCH

    inbox = registry.keys.inbox(B)
    store.set(inbox, relayed.encode(relayed.Relayed(A, "t1", store.current_index(), reset=True)))
    registry.create_unit(unit("b.service", L))
    registry.schedule_unit("b.service", B)
    assert wait_until(lambda: "b.service" in agent.running(), timeout=10)
    assert agent.mode is Mode.WATCH  # A does not hold the lease

    store.set(inbox, relayed.encode(relayed.Relayed(D, "t2", store.current_index(), reset=True)))
    assert wait_until(lambda: agent.mode is Mode.RELAY, timeout=10)
    lease = registry.lease()
    assert lease is not None
    registry.release_lease(lease)  # as when it expires
    assert wait_until(lambda: agent.mode is Mode.WATCH, timeout=10)
    registry.create_unit(unit("c.service", L))
    registry.schedule_unit("c.service", B)
    assert wait_until(lambda: "c.service" in agent.running(), timeout=10)


def test_job_relay_off_keeps_fleets_watch(cluster: Callable[..., Daemon], store: KVStore, etcd_prefix: str) -> None:
    registry = Registry(store, etcd_prefix)
    cluster(A, engine=True, job_relay=False)
    agent = cluster(B, job_relay=False)
    assert agent.srv.feed is None
    registry.create_unit(unit("x.service", L, MachineID=B))
    assert wait_until(lambda: "x.service" in agent.running(), timeout=10)
    assert store.list(registry.keys.inboxes).nodes == ()
