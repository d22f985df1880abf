"""Unit argument resolution (fleet-reference 1.6) and the lifecycle rules that need no etcd, on MemoryStore."""

from __future__ import annotations

import pathlib

import pytest

from fleetpy.client.errors import UnitCreationError, UnitStateError
from fleetpy.client.lifecycle import Lifecycle
from fleetpy.client.units import create_units, find_units, resolve_units, unit_names, unit_path
from fleetpy.client.wait import Blocking
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile
from tests.client.helpers import GLOBAL, PLAIN, Env

OTHER = UnitFile.parse("[Service]\nExecStart=/bin/sleep 5\n")


@pytest.mark.parametrize(
    ("arg", "path", "name"),
    [("foo", "foo.service", "foo.service"), ("a/b.socket", "a/b.socket", "b.socket"),
     ("x.link", "x.link.service", "x.link.service"), ("../up.timer", "../up.timer", "up.timer"),
     ("d/web@1", "d/web@1.service", "web@1.service"), ("t.target", "t.target.service", "t.target.service")],
)
def test_argument_paths_and_names(arg: str, path: str, name: str) -> None:
    assert unit_path(arg) == path
    assert unit_names([arg]) == [name]


def test_find_units_keeps_argument_order_and_drops_absent() -> None:
    env = Env()
    for name in ("a.service", "b.service"):
        env.registry.create_unit(Unit(name, PLAIN))
    found = find_units(env.client, ["b", "missing", "a.service", "b.service"])
    assert [u.name for u in found] == ["b.service", "a.service"]


def test_existing_unit_is_used_and_local_difference_warned(tmp_path: pathlib.Path) -> None:
    env = Env()
    env.registry.create_unit(Unit("a.service", PLAIN))
    (tmp_path / "a.service").write_text(OTHER.contents)
    resolved = resolve_units(env.client, [str(tmp_path / "a.service")], command="start", report=env.report)
    assert resolved[0].unit_file is None
    assert env.report.stderr == [f"WARNING: Unit a.service in registry differs from local unit file "
                                 f"{tmp_path}/a.service. Add --replace to override."]


def test_instance_differing_from_local_template_is_warned(tmp_path: pathlib.Path) -> None:
    env = Env()
    env.registry.create_unit(Unit("w@1.service", PLAIN))
    (tmp_path / "w@.service").write_text(OTHER.contents)
    resolve_units(env.client, [str(tmp_path / "w@1.service")], command="start", report=env.report)
    assert "differs from local template unit file" in env.report.stderr[0]


@pytest.mark.parametrize(
    ("command", "state", "replaced"),
    [("submit", JobState.INACTIVE, True), ("submit", JobState.LOADED, False), ("load", JobState.LOADED, True),
     ("load", JobState.LAUNCHED, False), ("start", JobState.LAUNCHED, True)],
)
def test_replace_allowed_states(tmp_path: pathlib.Path, command: str, state: JobState, replaced: bool) -> None:
    env = Env()
    env.registry.create_unit(Unit("a.service", PLAIN, state))
    (tmp_path / "a.service").write_text(OTHER.contents)
    resolved = resolve_units(env.client, [str(tmp_path / "a.service")], command=command, replace=True,
                             report=env.report)
    assert (resolved[0].unit_file == OTHER) is replaced
    if not replaced:
        assert env.report.stdout == [f"Warning: can not replace Unit(a.service) in state '{state}', use the "
                                     "appropriate command"]


def test_replace_needs_a_local_file() -> None:
    env = Env()
    env.registry.create_unit(Unit("a.service", PLAIN))
    with pytest.raises(UnitCreationError, match=r"--replace: no local unit file for Unit\(a.service\)"):
        resolve_units(env.client, ["/nonexistent/a.service"], command="start", replace=True, report=env.report)


def test_instance_prefers_registry_template(tmp_path: pathlib.Path) -> None:
    env = Env()
    env.registry.create_unit(Unit("w@.service", PLAIN))
    (tmp_path / "w@.service").write_text(OTHER.contents)
    resolved = resolve_units(env.client, [str(tmp_path / "w@3.service")], command="start", report=env.report)
    assert resolved[0].unit_file == PLAIN and resolved[0].source == "template Unit(w@.service) in registry"


def test_duplicates_are_resolved_once(tmp_path: pathlib.Path) -> None:
    env = Env()
    (tmp_path / "a.service").write_text(PLAIN.contents)
    args = [str(tmp_path / "a.service"), str(tmp_path / "a")]
    resolved = resolve_units(env.client, args, command="submit", report=env.report)
    assert len(resolved) == 1
    assert [u.name for u in create_units(env.client, resolved, report=env.report)] == ["a.service"]


def test_unknown_xfleet_keys_are_warned_not_refused(tmp_path: pathlib.Path) -> None:
    env = Env()
    (tmp_path / "a.service").write_text("[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nBogus=1\n")
    create_units(env.client, resolve_units(env.client, [str(tmp_path / "a.service")], command="submit",
                                           report=env.report), report=env.report)
    assert env.report.stderr == ['WARNING: Unit a.service: unknown [X-Fleet] option "Bogus" (ignored by the '
                                 "scheduler)"]


def test_global_units_never_wait_and_say_so() -> None:
    env = Env()
    env.registry.create_unit(Unit("g.service", GLOBAL, JobState.LAUNCHED))
    life = Lifecycle(env.client, env.report, env.waiter)
    life.stop(["g.service"], blocking=Blocking.of(attempts=1))
    life.start(["g.service"], blocking=Blocking.of(attempts=1))
    life.unload(["g.service"], blocking=Blocking.of(attempts=1))
    assert env.report.stdout == ["Triggered global unit g.service stop", "Triggered global unit g.service start",
                                 "Triggered global unit g.service unload"]
    assert env.sleeps == []


def test_stop_checks_every_unit_before_changing_any() -> None:
    env = Env()
    env.registry.create_unit(Unit("a.service", PLAIN, JobState.LAUNCHED))
    env.run_unit("a.service")
    env.registry.create_unit(Unit("b.service", PLAIN, JobState.LAUNCHED))  # never scheduled: inactive
    with pytest.raises(UnitStateError, match=r"Unable to stop unit b\.service in state inactive"):
        Lifecycle(env.client, env.report, env.waiter).stop(["a", "b"], blocking=Blocking.of(no_block=True))
    a = env.registry.unit("a.service")
    assert a is not None and a.target_state is JobState.LAUNCHED
