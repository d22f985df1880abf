"""The agent against a FakeUnitManager and an in-memory registry: what reaches systemd, and what is published."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from fleetpy.model.records import JobState
from fleetpy.registry.store import Action, Event, Node
from fleetpy.systemd.fake import FakeUnitManager
from tests.agent.builders import ME, OTHER, unit
from tests.agent.harness import Harness

L, D, I = JobState.LAUNCHED, JobState.LOADED, JobState.INACTIVE  # noqa: E741


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(metadata={"role": "web"})
    yield harness
    harness.close()


def test_launched_unit_is_loaded_started_and_published(h: Harness) -> None:
    h.submit(unit("a.service", L))
    assert h.reconcile() == ["LoadUnit a.service", "StartUnit a.service"]
    assert h.fake.active["a.service"] == ("active", "running")
    h.publish()
    assert h.states() == {"a.service": ("loaded", "active", "running")}
    assert h.job_state("a.service") == ME
    state = h.registry.unit_states(unit_name="a.service")[0]
    assert state.unit_hash == unit("a.service").hash
    assert h.reconcile() == []


def test_loaded_then_started_then_stopped(h: Harness) -> None:
    h.submit(unit("a.service", D))
    assert h.reconcile() == ["LoadUnit a.service"]
    h.publish()
    assert h.states() == {"a.service": ("loaded", "inactive", "dead")}
    h.set_state("a.service", L)
    assert h.reconcile() == ["StartUnit a.service"]
    h.set_state("a.service", D)
    assert h.reconcile() == ["StopUnit a.service"]
    h.publish()
    assert h.states() == {"a.service": ("loaded", "inactive", "dead")}
    assert h.job_state("a.service") is None


def test_unit_scheduled_elsewhere_or_unscheduled_is_left_alone(h: Harness) -> None:
    h.submit(unit("a.service", L), target=OTHER)
    h.submit(unit("b.service", L), target=None)
    assert h.reconcile() == []
    assert h.fake.calls == []


@pytest.mark.parametrize("how", ["destroy", "unschedule", "inactive", "moved"])
def test_unit_leaving_this_machine_is_unloaded_and_its_state_removed(h: Harness, how: str) -> None:
    h.submit(unit("a.service", L))
    h.reconcile()
    h.publish()
    assert "a.service" in h.states()
    if how == "destroy":
        h.registry.destroy_unit("a.service")
    elif how == "unschedule":
        h.registry.unschedule_unit("a.service", ME)
    elif how == "inactive":
        h.set_state("a.service", I)
    else:
        h.registry.unschedule_unit("a.service", ME)
        h.registry.schedule_unit("a.service", OTHER)
    assert h.reconcile() == ["UnloadUnit a.service", "ReloadUnitFiles"]
    assert "a.service" not in h.fake.files and "a.service" not in h.fake.active
    h.publish()
    assert h.states() == {}
    assert h.registry.store.get(h.registry.keys.legacy_state("a.service")) is None
    if how != "destroy":
        assert h.job_state("a.service") is None


def test_replaced_content_is_unloaded_loaded_and_restarted(h: Harness) -> None:
    h.submit(unit("a.service", L, "v1"))
    h.reconcile()
    h.registry.create_unit(unit("a.service", L, "v2"))
    assert h.reconcile() == ["UnloadUnit a.service", "LoadUnit a.service", "ReloadUnitFiles", "StartUnit a.service"]
    assert h.fake.files["a.service"] == unit("a.service", L, "v2").unit_file
    h.publish()
    assert h.registry.unit_states(unit_name="a.service")[0].unit_hash == unit("a.service", L, "v2").hash


def test_many_new_units_no_daemon_reload_and_one_state_query_per_poll(h: Harness) -> None:
    for i in range(50):
        h.submit(unit(f"u{i:02d}.service", L))
    tasks = h.reconcile()
    assert tasks.count("ReloadUnitFiles") == 0 and len(tasks) == 100  # new files: no reload
    before = h.fake.count("states")
    h.publish()
    assert h.fake.count("states") == before + 1
    assert len(h.states()) == 50


def test_unchanged_states_are_neither_rewritten_nor_refreshed(h: Harness) -> None:
    h.submit(unit("a.service", L))
    h.reconcile()
    h.publish()
    h.reconcile()
    index = h.memory.current_index()
    h.store.calls.clear()
    for _ in range(3):
        h.outcomes()
        h.publish()
    assert h.memory.current_index() == index  # nothing written
    assert "set" not in h.store.calls and "refresh" not in h.store.calls and "delete" not in h.store.calls


def test_restarted_agent_leaves_running_units_alone(h: Harness) -> None:
    h.submit(unit("a.service", L))
    h.submit(unit("b.service", D))
    h.reconcile()
    h.publish()
    starts = h.fake.count("start")
    again = Harness(manager=h.fake, memory=h.memory, metadata={"role": "web"})
    try:
        again.publisher.adopt()
        assert again.reconcile() == []
        assert h.fake.count("start") == starts and h.fake.count("reload") == 0
        again.publish()
        # the adopted states and heartbeat were already right: nothing rewritten, nothing refreshed
        assert "set" not in again.store.calls and "refresh" not in again.store.calls
        assert again.job_state("a.service") == ME
    finally:
        again.close()


def test_restarted_agent_reloads_a_file_systemd_does_not_know(h: Harness) -> None:
    fake = FakeUnitManager()
    fake.files["a.service"] = unit("a.service").unit_file  # left in the units directory, not linked
    again = Harness(manager=fake)
    again.submit(unit("a.service", L))
    try:
        assert again.reconcile() == ["UnloadUnit a.service", "LoadUnit a.service", "ReloadUnitFiles",
                                     "StartUnit a.service"]
    finally:
        again.close()


def test_restarted_agent_unloads_what_is_no_longer_scheduled(h: Harness) -> None:
    h.submit(unit("a.service", L))
    h.reconcile()
    h.publish()
    h.registry.destroy_unit("a.service")
    again = Harness(manager=h.fake, memory=h.memory)
    try:
        again.publisher.adopt()
        assert again.reconcile() == ["UnloadUnit a.service", "ReloadUnitFiles"]
        again.publish()
        assert again.states() == {}
    finally:
        again.close()


def test_a_failed_load_halts_the_pass_and_the_next_pass_goes_on(h: Harness) -> None:
    for name in ("a.service", "b.service", "c.service"):
        h.submit(unit(name, L))
    h.fake.fail("load", "b.service", "No space left on device")
    assert [(o.task.kind.value, o.task.unit, bool(o.error), o.skipped) for o in h.outcomes()] == [
        ("LoadUnit", "a.service", False, False), ("LoadUnit", "b.service", True, False),
        ("LoadUnit", "c.service", False, False),
        ("StartUnit", "a.service", False, True), ("StartUnit", "b.service", False, True),
        ("StartUnit", "c.service", False, True)]
    assert h.agent.trigger.wait(0)  # progress was made: the loop runs again at once
    assert h.reconcile() == ["LoadUnit b.service", "StartUnit a.service", "StartUnit b.service",
                             "StartUnit c.service"]
    assert h.reconcile() == []


def test_a_failed_start_does_not_keep_the_other_starts_of_its_batch_back(h: Harness) -> None:
    for name in ("a.service", "b.service", "c.service"):
        h.submit(unit(name, L))
    h.fake.fail("start", "b.service", "Unit b.service has a bad unit file setting.")
    assert h.reconcile() == ["LoadUnit a.service", "LoadUnit b.service", "LoadUnit c.service",
                             "StartUnit a.service", "StartUnit c.service"]
    assert h.reconcile() == []  # b is not retried (fleet sets the target state first)
    assert h.fake.count("start", "b.service") == 1


def test_a_start_that_failed_for_a_transient_reason_is_retried(h: Harness) -> None:
    h.submit(unit("a.service", L))
    h.fake.fail("start", "a.service", "The maximum number of pending replies per connection has been reached",
                transient=True)
    assert h.reconcile() == ["LoadUnit a.service"]
    assert h.reconcile() == ["StartUnit a.service"]
    assert h.fake.active["a.service"] == ("active", "running")
    h.publish()
    assert h.job_state("a.service") == ME


def test_unit_systemd_rejects_shows_the_load_error_and_others_run(h: Harness) -> None:
    h.fake.reject("bad.service")
    h.submit(unit("bad.service", L))
    h.submit(unit("good.service", L))
    h.reconcile()
    h.reconcile()
    h.publish()
    assert h.states() == {"bad.service": ("bad-setting", "inactive", "dead"),
                          "good.service": ("loaded", "active", "running")}


def test_failed_unit_is_published_as_failed_and_not_restarted(h: Harness) -> None:
    h.submit(unit("a.service", L))
    h.reconcile()
    h.fake.kill("a.service")
    assert h.reconcile() == []
    h.publish()
    assert h.states() == {"a.service": ("loaded", "failed", "failed")}


def test_global_units_follow_metadata_including_dynamic_metadata(h: Harness) -> None:
    h.submit(unit("web.service", L, Global="true", MachineMetadata="role=web"), target=None)
    h.submit(unit("db.service", L, Global="true", MachineMetadata="role=db"), target=None)
    h.submit(unit("all.service", L, Global="true"), target=None)
    assert h.reconcile() == ["LoadUnit all.service", "LoadUnit web.service",
                             "StartUnit all.service", "StartUnit web.service"]
    h.registry.set_machine_metadata(ME, "role", "db")
    assert h.reconcile() == ["UnloadUnit web.service", "LoadUnit db.service", "ReloadUnitFiles",
                             "StartUnit db.service"]


def test_conflicting_units_skip_the_later_one(h: Harness) -> None:
    h.submit(unit("a.service", L))
    h.submit(unit("b.service", L, Conflicts="a.service"))
    assert h.reconcile() == ["LoadUnit a.service", "StartUnit a.service"]
    h.registry.destroy_unit("a.service")
    assert h.reconcile() == ["UnloadUnit a.service", "LoadUnit b.service", "ReloadUnitFiles",
                             "StartUnit b.service"]


def test_install_section_enables_the_unit(h: Harness) -> None:
    from fleetpy.model.records import Unit
    from tests.agent.builders import unit_file

    h.submit(Unit("side.service", unit_file(install=True), D))
    h.reconcile()
    assert "side.service" in h.fake.enabled


def test_job_events_wake_the_loop_only_when_they_can_matter_here(h: Harness) -> None:
    h.jobs.on_change = h.agent.on_job_event
    h.jobs.reload()
    assert h.agent.trigger.wait(0)

    def wakes(change: Callable[[], None]) -> bool:
        h.agent.trigger.wait(0)  # consumes a pending wake-up
        change()
        while h.jobs.index < h.memory.current_index():
            h.jobs.step()
        return h.agent.trigger.wait(0)

    assert not wakes(lambda: h.registry.unit_heartbeat("a.service", ME))
    assert wakes(lambda: h.submit(unit("a.service", L)))  # scheduled here
    h.agent.reconcile()  # reads a's body, which the units below share
    assert not wakes(lambda: h.submit(unit("b.service", L), target=OTHER))  # elsewhere
    assert not wakes(lambda: h.registry.set_target_state("b.service", JobState.LOADED))
    assert not wakes(lambda: h.submit(unit("c.service", L), target=None))  # same body as a: known, not global
    assert wakes(lambda: h.submit(unit("d.service", L, "v2"), target=None))  # unknown body
    assert wakes(lambda: h.submit(unit("g.service", L, Global="true"), target=None))
    assert wakes(lambda: h.registry.set_target_state("a.service", JobState.LOADED))  # a local unit
    assert wakes(lambda: h.registry.destroy_unit("a.service"))


@pytest.mark.parametrize(("key", "action", "value", "wakes"), [
    ("machines/m1/object", Action.SET, "{}", True),  # not the job tree (a cache of another tree)
    ("job", Action.DELETE, None, True),  # the whole tree
    ("job/b.service", Action.DELETE, None, False),  # a destroy of a unit scheduled elsewhere
    ("job/b.service/target", Action.CREATE, ME, True),
    ("job/b.service/target", Action.CREATE, OTHER, False),
    ("job/b.service/target", Action.DELETE, ME, False),
    ("job/b.service/job-state", Action.SET, ME, False),
    ("job/b.service/object", Action.SET, "{}", False),  # scheduled elsewhere: whatever its object says
    ("job/a.service/job-state", Action.SET, OTHER, False),  # not a field that changes a plan, even here
    ("job/a.service/target-state", Action.SET, "loaded", True),  # a local unit
    ("job/b.service/extra/deeper", Action.SET, "x", False),  # scheduled elsewhere
])
def test_a_job_event_wakes_the_loop_by_its_key(h: Harness, key: str, action: Action, value: str | None,
                                               wakes: bool) -> None:
    h.submit(unit("a.service", L))
    h.submit(unit("b.service", L), target=OTHER)
    h.reconcile()
    h.agent.trigger.wait(0)
    node = Node(h.registry.keys.prefix + key, value, 10**6, is_dir=value is None)
    h.agent.on_job_event(Event(action, node))
    assert h.agent.trigger.wait(0) is wakes


def test_etcd_outage_keeps_units_running_and_reconverges(h: Harness) -> None:
    h.submit(unit("a.service", L))
    h.reconcile()
    h.publish()
    h.store.down = True
    h.publisher.kick()
    h.fake.kill("a.service")
    assert [o.task for o in h.agent.reconcile()] == []  # from the caches: nothing unloaded
    h.publisher.poll()
    assert not h.publisher.writer.flush(0.3)  # the write is being retried
    assert "a.service" in h.fake.files
    h.store.down = False
    assert h.publisher.writer.flush(15.0)
    assert h.states() == {"a.service": ("loaded", "failed", "failed")}


def test_purge_unloads_everything_and_removes_states(h: Harness) -> None:
    h.submit(unit("a.service", L))
    h.submit(unit("b.service", D))
    h.reconcile()
    h.publish()
    h.agent.purge()
    assert h.publisher.purge(5.0)
    assert h.fake.files == {} and h.fake.active == {}
    assert h.states() == {}
    assert h.job_state("a.service") is None


def test_units_arriving_one_after_another_are_linked_in_one_pass(h: Harness) -> None:
    """A pass that would link files soon after another one did waits out ``load_gap``: systemd rebuilds its
    unit-file map at the first start after each link. A lone unit is not held."""
    h.agent.refresh_caches = True
    h.agent.load_gap = 0.6
    h.submit(unit("a.service", L))
    started = time.monotonic()
    assert [str(o.task.kind) for o in h.agent.settled_reconcile()] == ["LoadUnit", "StartUnit"]
    assert time.monotonic() - started < 0.5
    h.submit(unit("b.service", L))
    later = threading.Timer(0.2, lambda: h.submit(unit("c.service", L)))
    later.start()
    outcomes = h.agent.settled_reconcile()
    later.join()
    assert [f"{o.task.kind} {o.task.unit}" for o in outcomes] == [
        "LoadUnit b.service", "LoadUnit c.service", "StartUnit b.service", "StartUnit c.service"]
    assert h.fake.active["c.service"] == ("active", "running")
