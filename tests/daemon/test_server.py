"""The whole fleetpyd server in-process (threads, watches) over an in-memory or real etcd and a fake systemd."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetpy.agent.heart import DuplicateMachineError
from fleetpy.daemon import server as server_module
from fleetpy.daemon.config import Config
from fleetpy.daemon.server import AlreadyRunning, Server
from fleetpy.model.records import JobState, MachineState
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import KVStore
from fleetpy.systemd.fake import FakeUnitManager
from tests.agent.builders import ME, unit
from tests.agent.harness import wait_until

L = JobState.LAUNCHED


class Running:
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.code = self.srv.run(self.stop, ready=self.ready.set)
        except BaseException as err:
            self.error = err

    def finish(self) -> int | None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.code


@pytest.fixture
def make(store: KVStore, etcd_prefix: str, tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Running]]]:
    started: list[Running] = []

    def start(fake: FakeUnitManager | None = None, **options: object) -> tuple[Server, Running]:
        values: dict[str, object] = {"disable_engine": True, **options}
        config = Config(etcd_key_prefix=etcd_prefix, units_directory=str(tmp_path / "units"),
                        public_ip="10.0.0.1", agent_ttl=5.0, **values)  # type: ignore[arg-type]
        srv = server_module.build(config, store=store, manager=fake or FakeUnitManager(), machine_id=ME)
        running = Running(srv)
        started.append(running)
        return srv, running

    yield start
    for running in started:
        running.stop.set()
        running.thread.join(30)
        if running.srv.lock_fd is not None:
            running.srv.close()


def test_units_run_states_publish_and_sigterm_purges(make: Callable[..., tuple[Server, Running]],
                                                     store: KVStore, etcd_prefix: str) -> None:
    srv, running = make()
    assert running.ready.wait(10)
    registry = Registry(store, etcd_prefix)
    assert registry.machine(ME) == MachineState(ME, "10.0.0.1", {}, srv.heart.machine.version,
                                                disable_engine=True)
    registry.create_unit(unit("a.service", L))
    registry.schedule_unit("a.service", ME)
    assert wait_until(lambda: [(s.name, s.active_state) for s in registry.unit_states()] == [("a.service", "active")])
    assert registry.job("a.service").job_state == ME  # type: ignore[union-attr]
    assert running.finish() == 0
    fake = srv.manager
    assert isinstance(fake, FakeUnitManager) and fake.files == {} and fake.active == {}
    assert registry.unit_states() == [] and registry.machine(ME) is None
    assert registry.job("a.service").job_state is None  # type: ignore[union-attr]


def test_a_crashed_watch_stops_the_daemon_with_exit_1(make: Callable[..., tuple[Server, Running]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(_cache: TreeCache, _stop: threading.Event) -> None:
        raise RuntimeError("boom")  # a bug in a watch: not an etcd error it would retry
    monkeypatch.setattr(TreeCache, "run", crash)
    srv, running = make()
    running.thread.join(30)
    assert running.code == 1 and srv.crashed and all(name.startswith("watch:") for name in srv.crashed)


def test_shutdown_keep_units_leaves_units_states_and_machine(make: Callable[..., tuple[Server, Running]],
                                                             store: KVStore, etcd_prefix: str) -> None:
    srv, running = make(shutdown_keep_units=True)
    assert running.ready.wait(10)
    registry = Registry(store, etcd_prefix)
    registry.create_unit(unit("a.service", L))
    registry.schedule_unit("a.service", ME)
    assert wait_until(lambda: len(registry.unit_states()) == 1)
    assert running.finish() == 0
    assert srv.manager.units() != {}
    assert len(registry.unit_states()) == 1 and registry.machine(ME) is not None
    srv.close()
    # a restarted agent on the same machine takes over without touching the unit
    fake = srv.manager
    assert isinstance(fake, FakeUnitManager)
    starts = fake.count("start")
    again, running2 = make(fake)
    assert running2.ready.wait(10)
    assert wait_until(lambda: again.agent.passes > 0)
    assert fake.count("start") == starts and fake.active["a.service"] == ("active", "running")
    running2.finish()


def test_duplicate_machine_id_refuses_to_start(make: Callable[..., tuple[Server, Running]], store: KVStore,
                                               etcd_prefix: str) -> None:
    Registry(store, etcd_prefix).create_machine_state(MachineState(ME, "10.0.0.99"), ttl=30)
    _, running = make()
    running.thread.join(10)
    assert isinstance(running.error, DuplicateMachineError)
    assert "10.0.0.99" in str(running.error)


def test_second_agent_on_the_same_machine_is_refused(tmp_path: Path) -> None:
    config = Config(units_directory=str(tmp_path / "units"), disable_engine=True)
    fd = server_module.take_lock(config.units_directory)
    try:
        with pytest.raises(AlreadyRunning, match="another fleetpyd"):
            server_module.build(config, manager=FakeUnitManager(), machine_id=ME)
    finally:
        import os
        os.close(fd)


def test_with_the_engine_an_unscheduled_unit_is_scheduled_here_and_runs(
        make: Callable[..., tuple[Server, Running]], store: KVStore, etcd_prefix: str) -> None:
    srv, running = make(disable_engine=False, engine_reconcile_interval=0.5)
    assert srv.engine is not None
    assert running.ready.wait(10)
    registry = Registry(store, etcd_prefix)
    registry.create_unit(unit("a.service", L))
    assert wait_until(lambda: [(s.name, s.active_state) for s in registry.unit_states()] == [("a.service", "active")],
                      timeout=15)
    assert registry.job("a.service").target == ME  # type: ignore[union-attr]
    assert running.finish() == 0
    assert registry.lease() is None  # released on shutdown


def test_the_engine_follows_the_agents_job_cache_and_wakes_on_its_events(
        make: Callable[..., tuple[Server, Running]], store: KVStore, etcd_prefix: str) -> None:
    """One watch of job/ per daemon: the engine reads the agent's copy and is woken by its events (a 30 s
    safety pass would be too late for these waits)."""
    srv, running = make(disable_engine=False, engine_reconcile_interval=30.0)
    assert srv.engine is not None and srv.engine.jobs is srv.agent.jobs  # type: ignore[attr-defined]
    assert running.ready.wait(10)
    registry = Registry(store, etcd_prefix)

    def scheduled(name: str) -> bool:
        job = registry.job(name)
        return job is not None and job.target == ME

    for name in ("a.service", "b.service"):
        registry.create_unit(unit(name, L))
        assert wait_until(functools.partial(scheduled, name), timeout=10)
    assert running.finish() == 0


def test_an_unusable_units_directory_is_a_one_line_error(tmp_path: Path) -> None:
    from fleetpy.errors import FleetError

    (tmp_path / "file").write_text("")
    config = Config(units_directory=str(tmp_path / "file" / "units"), disable_engine=True)
    with pytest.raises(FleetError, match="cannot use the units directory") as info:
        server_module.build(config, manager=FakeUnitManager(), machine_id=ME)
    assert "\n" not in str(info.value)
