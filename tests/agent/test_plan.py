"""The agent's plan, table-driven: (desired, current) -> tasks, in fleet's order with fleet's reasons."""

from __future__ import annotations

import pytest

from fleetpy.agent.plan import LocalUnit, Reason, Task, TaskKind, order, plan, plan_purge
from fleetpy.model.records import JobState
from tests.agent.builders import local, unit

L, D = JobState.LAUNCHED, JobState.LOADED
I = JobState.INACTIVE  # noqa: E741


def brief(tasks: list[Task]) -> list[str]:
    return [f"{t.kind.value} {t.unit}".strip() for t in tasks]


CASES = [
    # id, desired units, current units, expected tasks
    ("nothing", [], [], []),
    ("not-desired-not-present", [], [], []),
    ("not-desired-but-present", [], [local("a.service", L)], ["UnloadUnit a.service", "ReloadUnitFiles"]),
    ("not-desired-loaded-present", [], [local("a.service", D)], ["UnloadUnit a.service", "ReloadUnitFiles"]),
    ("desired-inactive-present", [unit("a.service", I)], [local("a.service", D)],
     ["UnloadUnit a.service", "ReloadUnitFiles"]),
    ("desired-inactive-absent", [unit("a.service", I)], [], []),
    ("desired-loaded-absent", [unit("a.service", D)], [], ["LoadUnit a.service"]),
    ("desired-launched-absent", [unit("a.service", L)], [],
     ["LoadUnit a.service", "StartUnit a.service"]),
    ("loaded-want-launched", [unit("a.service", L)], [local("a.service", D)], ["StartUnit a.service"]),
    ("launched-want-loaded", [unit("a.service", D)], [local("a.service", L)], ["StopUnit a.service"]),
    ("launched-want-launched", [unit("a.service", L)], [local("a.service", L)], []),
    ("loaded-want-loaded", [unit("a.service", D)], [local("a.service", D)], []),
    ("hash-differs-launched", [unit("a.service", L, "v2")], [local("a.service", L, "v1")],
     ["UnloadUnit a.service", "LoadUnit a.service", "ReloadUnitFiles", "StartUnit a.service"]),
    ("hash-differs-loaded", [unit("a.service", D, "v2")], [local("a.service", L, "v1")],
     ["UnloadUnit a.service", "LoadUnit a.service", "ReloadUnitFiles"]),
    ("hash-unknown-after-restart", [unit("a.service", L)], [LocalUnit("a.service", "", L)],
     ["UnloadUnit a.service", "LoadUnit a.service", "ReloadUnitFiles", "StartUnit a.service"]),
    ("no-reload-for-new-files", [unit("a.service", L), unit("b.service", L), unit("c.service", D)], [],
     ["LoadUnit a.service", "LoadUnit b.service", "LoadUnit c.service", "StartUnit a.service", "StartUnit b.service"]),
    ("one-reload-for-many", [unit("a.service", L), unit("b.service", L, "v2")],
     [local("b.service", L), local("c.service")],
     ["UnloadUnit b.service", "UnloadUnit c.service", "LoadUnit a.service", "LoadUnit b.service", "ReloadUnitFiles",
      "StartUnit a.service", "StartUnit b.service"]),
    ("kind-order-across-units",
     [unit("a.service", L), unit("b.service", D), unit("d.service", L, "v2")],
     [local("b.service", L), local("c.service", L), local("d.service", L, "v1")],
     ["UnloadUnit c.service", "UnloadUnit d.service", "LoadUnit a.service", "LoadUnit d.service", "ReloadUnitFiles",
      "StopUnit b.service", "StartUnit a.service", "StartUnit d.service"]),
    ("no-reload-for-start-stop-only", [unit("a.service", L), unit("b.service", D)],
     [local("a.service", D), local("b.service", L)], ["StopUnit b.service", "StartUnit a.service"]),
    ("names-sorted-within-kind", [unit("z.service", L), unit("a.service", L), unit("m@1.service", L)], [],
     ["LoadUnit a.service", "LoadUnit m@1.service", "LoadUnit z.service",
      "StartUnit a.service", "StartUnit m@1.service", "StartUnit z.service"]),
]


@pytest.mark.parametrize(("desired", "current", "expected"), [pytest.param(d, c, e, id=i) for i, d, c, e in CASES])
def test_plan(desired: list, current: list, expected: list[str]) -> None:
    tasks = plan({u.name: u for u in desired}, {u.name: u for u in current})
    assert brief(tasks) == expected


REASONS = [
    ("unload", [], [local("a.service")], TaskKind.UNLOAD, Reason.NOT_SCHEDULED),
    ("load", [unit("a.service", D)], [], TaskKind.LOAD, Reason.NOT_LOADED),
    ("start-after-load", [unit("a.service", L)], [], TaskKind.START, Reason.NOT_LOADED),
    ("start", [unit("a.service", L)], [local("a.service", D)], TaskKind.START, Reason.WANT_LAUNCHED),
    ("stop", [unit("a.service", D)], [local("a.service", L)], TaskKind.STOP, Reason.WANT_LOADED),
    ("hash-unload", [unit("a.service", L, "v2")], [local("a.service")], TaskKind.UNLOAD, Reason.HASH_DIFFERS),
    ("hash-load", [unit("a.service", L, "v2")], [local("a.service")], TaskKind.LOAD, Reason.HASH_DIFFERS),
    ("reload", [], [local("a.service")], TaskKind.RELOAD, Reason.RELOAD),
]


@pytest.mark.parametrize(("desired", "current", "kind", "reason"),
                         [pytest.param(d, c, k, r, id=i) for i, d, c, k, r in REASONS])
def test_reasons(desired: list, current: list, kind: TaskKind, reason: Reason) -> None:
    tasks = plan({u.name: u for u in desired}, {u.name: u for u in current})
    assert [t.reason for t in tasks if t.kind is kind] == [reason]


def test_load_carries_the_desired_content() -> None:
    wanted = unit("a.service", L, "v2")
    (load,) = [t for t in plan({"a.service": wanted}, {"a.service": local("a.service")}) if t.kind is TaskKind.LOAD]
    assert load.unit_file == wanted.unit_file


def test_order_drops_a_needless_reload_and_dedupes() -> None:
    reload = Task(TaskKind.RELOAD, "", Reason.RELOAD)
    start = Task(TaskKind.START, "a.service", Reason.WANT_LAUNCHED)
    assert order([reload, start]) == [start]
    load = Task(TaskKind.LOAD, "a.service", Reason.NOT_LOADED)
    assert order([reload, load, reload]) == [load]
    unload = Task(TaskKind.UNLOAD, "b.service", Reason.NOT_SCHEDULED)
    assert order([reload, load, unload, reload]) == [unload, load, reload]


def test_purge_unloads_everything() -> None:
    tasks = plan_purge({"b.service": local("b.service"), "a.service": local("a.service", D)})
    assert brief(tasks) == ["UnloadUnit a.service", "UnloadUnit b.service", "ReloadUnitFiles"]
    assert {t.reason for t in tasks if t.unit} == {Reason.PURGE}
    assert plan_purge({}) == []


def test_task_renders_as_one_log_line() -> None:
    task = Task(TaskKind.LOAD, "x.service", Reason.NOT_LOADED)
    assert str(task) == 'LoadUnit unit=x.service reason="unit scheduled here but not loaded"'
    assert str(Task(TaskKind.RELOAD, "", Reason.RELOAD)) == 'ReloadUnitFiles reason="unit files removed or replaced"'
