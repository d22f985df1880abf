"""explain(cluster, unit): the per-machine verdicts behind ``fleetpy explain UNIT``."""

from __future__ import annotations

import pytest

from fleetpy.engine.explain import explain
from fleetpy.errors import NotFound
from tests.engine.builders import A, B, C, cluster, machine, unit


def test_machine_by_machine_reasons() -> None:
    state = cluster(
        [unit("web@1.service", "C"), unit("x.service", MachineMetadata="role=db", Conflicts="web@*.service")],
        [machine("A", role="web"), machine("B", role="db"), machine("C", role="db")],
    )
    assert explain(state, "x.service") == [
        (A, False, "lacks metadata role=db"),
        (B, True, "able (0 units there)"),
        (C, False, "conflicts with web@1.service"),
    ]


def test_scheduled_unit_is_judged_where_it_is() -> None:
    state = cluster([unit("x.service", "A"), unit("y.service", "B"), unit("p.service", "B")], "AB")
    assert explain(state, "x.service") == [(A, True, "scheduled here"), (B, True, "able (2 units there)")]


def test_replaces_is_mentioned() -> None:
    state = cluster([unit("old.service", "A"), unit("new.service", Replaces="old.service")], "A")
    assert explain(state, "new.service") == [(A, True, "able (1 unit there); replaces old.service")]


@pytest.mark.parametrize(
    ("units", "name", "expected"),
    [
        pytest.param([unit("x.service", MachineID="B8")], "x.service",
                     [(A, False, "not MachineID bbbb2222"), (B, True, "able (0 units there)")], id="machine-id"),
        pytest.param([unit("x.service", MachineOf="p.service"), unit("p.service", "B")], "x.service",
                     [(A, False, "peer p.service is not scheduled here"), (B, True, "able (1 unit there)")],
                     id="peer"),
        pytest.param([unit("web@.service")], "web@.service",
                     [(A, False, "a template is never scheduled: start an instance of it")] * 1
                     + [(B, False, "a template is never scheduled: start an instance of it")], id="template"),
    ],
)
def test_explain_table(units: list, name: str, expected: list) -> None:  # type: ignore[type-arg]
    assert explain(cluster(units, "AB"), name) == expected


def test_global_units() -> None:
    state = cluster([unit("g.service", Global="true", MachineMetadata="role=web", Conflicts="x.service"),
                     unit("x.service", "B")],
                    [machine("A", role="web"), machine("B", role="web"), machine("C")])
    assert explain(state, "g.service") == [
        (A, True, "runs here (global unit)"),
        (B, False, "conflicts with x.service (global unit)"),
        (C, False, "lacks metadata role=web (global unit)"),
    ]


def test_unknown_unit() -> None:
    with pytest.raises(NotFound, match=r"unit nope\.service not found"):
        explain(cluster([]), "nope.service")
