"""The least-loaded scheduler on its own: choices, tie-breaks and the reasons it gives."""

from __future__ import annotations

import pytest

from fleetpy.engine import scheduler
from fleetpy.engine.cluster import Placement
from fleetpy.model.records import MachineState
from tests.engine.builders import A, B, C, cluster, machine, unit


def decide(units: list, machines: list | str = "ABC", **kw: bool) -> scheduler.Decision:  # type: ignore[type-arg]
    *placed, candidate = units
    return scheduler.decide(Placement(cluster([*placed, candidate], machines)), candidate, **kw)


@pytest.mark.parametrize(
    ("units", "machines", "machine_id", "reason"),
    [
        pytest.param([unit("x.service")], "ABC", A, "least loaded of 3 able machines", id="three-able"),
        pytest.param([unit("x.service", MachineMetadata="role=db")], [machine("A"), machine("B", role="db")], B,
                     "the only able machine", id="one-able"),
        pytest.param([unit("a.service", "A"), unit("x.service")], "AB", B, "least loaded of 2 able machines",
                     id="less-loaded-wins"),
        pytest.param([unit("a.service", "B"), unit("x.service")], "AB", A, "least loaded of 2 able machines",
                     id="lower-load-before-id"),
        pytest.param([unit("x.service", MachineID="C")], "ABC", C, f"MachineID {C}", id="pinned"),
        pytest.param([unit("p.service", "B"), unit("x.service", MachineOf="p.service")], "ABC", B,
                     "next to peer p.service", id="peer"),
        pytest.param([unit("old.service", "C"), unit("x.service", Replaces="old.service")], "ABC", C,
                     "replaces old.service", id="replacer-prefers-replaced-machine"),
        pytest.param([unit("old@1.service", "C"), unit("x.service", Replaces="old@*.service")], "ABC", C,
                     "replaces old@1.service", id="replaces-glob"),
        pytest.param([unit("old.service", "C", Conflicts="x.service"), unit("x.service", Replaces="old.service")],
                     "ABC", A, "least loaded of 2 able machines", id="replaced-machine-refuses-falls-back"),
        pytest.param([unit("x.service", MachineMetadata="role=gpu")], "AB", None, "no machine has role=gpu",
                     id="nobody-has-metadata"),
        pytest.param([unit("r.service", "A", Replaces="x.service"), unit("s.service", "B", Replaces="x.service"),
                      unit("x.service")], "AB", None,
                     "replaced by r.service, s.service on every machine", id="replaced-everywhere"),
        pytest.param([unit(f"w@{i}.service", "ABCD"[i]) for i in range(4)] + [unit("x.service", Conflicts="w@*")],
                     "ABCD", None, "conflicts with w@0.service, w@1.service, w@2.service and 1 more on every machine",
                     id="long-conflict-list-shortened"),
    ],
)
def test_decide(units: list, machines: list | str, machine_id: str | None, reason: str) -> None:  # type: ignore[type-arg]
    decision = decide(units, machines)
    assert (decision.machine_id, decision.reason) == (machine_id, reason)


def test_large_clusters_stop_at_the_first_able_machine() -> None:
    ids = [f"{i:08x}" + "0" * 24 for i in range(scheduler.COUNT_ABLE_UP_TO + 1)]
    state = cluster([unit("a.service", ids[0]), unit("x.service")], [MachineState(m) for m in ids])
    decision = scheduler.decide(Placement(state), state.units["x.service"])
    assert (decision.machine_id, decision.reason) == (ids[1], "least loaded able machine (0 units)")


def test_kicked_unit_does_not_kick_in_turn() -> None:
    units = [unit("j.service", "A"), unit("k.service", Replaces="j.service")]
    assert decide(units, "AB").replaces == ("j.service",)
    assert decide(units, "AB", kick=False) == scheduler.Decision(B, "the only able machine")
    assert decide(units, "A", kick=False).machine_id is None


def test_replaces_reported_on_decision() -> None:
    decision = decide([unit("old.service", "A"), unit("x.service", Replaces="old.service")], "AB")
    assert decision == scheduler.Decision(A, "replaces old.service", ("old.service",))


@pytest.mark.parametrize(
    ("loads", "expected"),
    [
        pytest.param({"1234abcd-one": 0, "1234abcd-two": 0}, "1234abcd-one", id="same-short-id-equal-load-lowest-id"),
        pytest.param({"1234abcd-one": 2, "1234abcd-two": 1}, "1234abcd-two", id="same-short-id-least-loaded"),
    ],
)
def test_short_machine_id_matching_several_machines(loads: dict[str, int], expected: str) -> None:
    """fleet's MatchID accepts an 8-char prefix, which two machines may share: least loaded, then lowest ID."""
    units = [unit(f"{mid}-{i}.service", mid) for mid, n in loads.items() for i in range(n)]
    units.append(unit("x.service", MachineID="1234abcd"))
    state = cluster(units, [MachineState(mid) for mid in loads])
    decision = scheduler.decide(Placement(state), state.units["x.service"])
    assert decision.machine_id == expected


def test_replacer_picks_least_loaded_of_the_machines_running_what_it_replaces() -> None:
    units = [unit("old@1.service", "A"), unit("a.service", "A"), unit("old@2.service", "B"),
             unit("x.service", Replaces="old@*.service")]
    assert decide(units, "ABC") == scheduler.Decision(B, "replaces old@2.service", ("old@2.service",))



def test_slots_keep_their_constrained_units_in_step() -> None:
    """A slot scans only its units that declare Conflicts or Replaces for a newcomer that declares neither:
    that subset follows every place and remove."""
    state = cluster([unit("c.service", "A", Conflicts="x.service"), unit("r.service", Replaces="x.service"),
                     unit("plain.service", "A"), unit("x.service")], "AB")
    placement = Placement(state)
    a, b = placement.slots[A], placement.slots[B]
    assert sorted(a.constrained) == ["c.service"] and sorted(a.units) == ["c.service", "plain.service"]
    placement.place("r.service", B)
    assert sorted(b.constrained) == ["r.service"]
    assert scheduler.decide(placement, state.units["x.service"]).reason == (
        "no machine can run it: 1 has conflicting c.service; 1 has its replacer r.service")
    placement.remove("c.service")
    placement.remove("r.service")
    assert a.constrained == {} and b.constrained == {} and sorted(a.units) == ["plain.service"]
    assert scheduler.decide(placement, state.units["x.service"]).machine_id == B
