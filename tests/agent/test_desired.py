"""Desired state of one machine, table-driven: targets, global units and metadata, conflicts both ways."""

from __future__ import annotations

import pytest

from fleetpy.agent.desired import desired_units, wanted_bodies
from fleetpy.model.records import JobState
from tests.agent.builders import ME, OTHER, unit

META = {"role": "web", "region": "eu"}

CASES = [
    # id, units, targets (name -> machine or None), expected wanted names, expected skipped names
    ("scheduled-here", [unit("a.service")], {"a.service": ME}, ["a.service"], []),
    ("scheduled-elsewhere", [unit("a.service")], {"a.service": OTHER}, [], []),
    ("unscheduled", [unit("a.service")], {"a.service": None}, [], []),
    ("inactive-still-listed", [unit("a.service", JobState.INACTIVE)], {"a.service": ME}, ["a.service"], []),
    ("global-no-metadata", [unit("g.service", Global="true")], {}, ["g.service"], []),
    ("global-matching", [unit("g.service", Global="true", MachineMetadata="role=web")], {}, ["g.service"], []),
    ("global-ored-values", [unit("g.service", Global="true", MachineMetadata=["role=db", "role=web"])], {},
     ["g.service"], []),
    ("global-anded-keys-miss", [unit("g.service", Global="true", MachineMetadata=["role=web", "region=us"])], {},
     [], ["g.service"]),
    ("global-missing-key", [unit("g.service", Global="true", MachineMetadata="disk=ssd")], {}, [], ["g.service"]),
    ("global-ignores-target", [unit("g.service", Global="true")], {"g.service": OTHER}, ["g.service"], []),
    ("global-false-is-not-global", [unit("g.service", Global="false")], {}, [], []),
    ("conflict-glob-new-vs-chosen", [unit("a.service"), unit("b.service", Conflicts="a*")],
     {"a.service": ME, "b.service": ME}, ["a.service"], ["b.service"]),
    ("conflict-chosen-vs-new", [unit("a.service", Conflicts="b.service"), unit("b.service")],
     {"a.service": ME, "b.service": ME}, ["a.service"], ["b.service"]),
    ("conflict-with-unit-elsewhere-ignored", [unit("a.service"), unit("b.service", Conflicts="a.service")],
     {"a.service": OTHER, "b.service": ME}, ["b.service"], []),
    ("global-conflicts-global", [unit("conflict-global.1.service", Global="true", Conflicts="conflict-global.*"),
                                 unit("conflict-global.2.service", Global="true", Conflicts="conflict-global.*")],
     {}, ["conflict-global.1.service"], ["conflict-global.2.service"]),
    ("no-self-conflict", [unit("a.service", Conflicts="a*")], {"a.service": ME}, ["a.service"], []),
    ("specifier-in-metadata", [unit("m@web.service", Global="true", MachineMetadata="role=%i")], {},
     ["m@web.service"], []),
    ("invalid-name-skipped", [unit("a b.service"), unit("a.service")], {"a b.service": ME, "a.service": ME},
     ["a.service"], ["a b.service"]),
    ("many-sorted", [unit("c.service"), unit("a.service"), unit("b.service")],
     {"a.service": ME, "b.service": ME, "c.service": ME}, ["a.service", "b.service", "c.service"], []),
]


@pytest.mark.parametrize(("units", "targets", "wanted", "skipped"),
                         [pytest.param(u, t, w, s, id=i) for i, u, t, w, s in CASES])
def test_desired(units: list, targets: dict, wanted: list[str], skipped: list[str]) -> None:
    out = desired_units(machine_id=ME, metadata=META, units=units, targets=targets)
    assert list(out.units) == wanted
    assert sorted(out.skipped) == skipped


def test_skipped_reasons_are_readable() -> None:
    out = desired_units(machine_id=ME, metadata=META, units=[
        unit("a.service"), unit("b.service", Conflicts="a.service"),
        unit("g.service", Global="true", MachineMetadata="role=db")], targets={"a.service": ME, "b.service": ME})
    assert out.skipped == {"b.service": "conflicts with a.service",
                           "g.service": "global unit: machine lacks metadata role=db"}


def test_target_states_are_kept() -> None:
    out = desired_units(machine_id=ME, metadata={}, units=[unit("a.service", JobState.LOADED)],
                        targets={"a.service": ME})
    assert out.units["a.service"].target_state is JobState.LOADED


def test_wanted_bodies_are_here_or_unscheduled() -> None:
    targets = {"a.service": ME, "b.service": OTHER, "c.service": None}
    assert wanted_bodies(ME, targets) == ["a.service", "c.service"]
