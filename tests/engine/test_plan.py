"""Table-driven tests of plan_cluster: which units are unscheduled and scheduled where, and why not."""

from __future__ import annotations

import pytest

from fleetpy.engine.cluster import ClusterState, UnitSpec
from fleetpy.engine.plan import Task, TaskKind, plan, plan_cluster
from fleetpy.model.records import JobState
from tests.engine.builders import A, B, C, cluster, machine, steps, unit

INACTIVE, LOADED = JobState.INACTIVE, JobState.LOADED

CASES = [
    # -- least loaded and tie-breaks ---------------------------------------------------------------------------
    pytest.param(cluster([]), [], {}, id="empty-cluster"),
    pytest.param(cluster([unit("x.service")]), ["+x.service@A"], {}, id="tie-on-empty-machines-lowest-id"),
    pytest.param(cluster([unit("a1.service", "A"), unit("a2.service", "A"), unit("b1.service", "B"),
                          unit("x.service")]), ["+x.service@C"], {}, id="least-loaded"),
    pytest.param(cluster([unit("a1.service", "A"), unit("b1.service", "B"), unit("x.service")]), ["+x.service@C"],
                 {}, id="least-loaded-empty-machine"),
    pytest.param(cluster([unit("a1.service", "A"), unit("b1.service", "B"), unit("x.service")], "AB"),
                 ["+x.service@A"], {}, id="tie-between-equally-loaded-lowest-id"),
    pytest.param(cluster([unit("z.service"), unit("y.service"), unit("x.service")]),
                 ["+x.service@A", "+y.service@B", "+z.service@C"], {}, id="sorted-names-each-decision-applied"),
    pytest.param(cluster([unit(f"u{i}.service") for i in range(5)], "AB"),
                 ["+u0.service@A", "+u1.service@B", "+u2.service@A", "+u3.service@B", "+u4.service@A"], {},
                 id="round-robin-through-ties"),
    pytest.param(cluster([unit("x.service")], []), [], {"x.service": "no machines in the cluster"}, id="no-machines"),
    # -- target states, templates, globals ---------------------------------------------------------------------
    pytest.param(cluster([unit("x.service", state=LOADED)]), ["+x.service@A"], {}, id="loaded-is-scheduled"),
    pytest.param(cluster([unit("x.service", state=INACTIVE)]), [], {}, id="inactive-not-scheduled"),
    pytest.param(cluster([unit("x.service", "B", state=INACTIVE)]), ["-x.service@B"], {},
                 id="inactive-unscheduled"),
    pytest.param(cluster([unit("web@.service")]), [], {}, id="template-never-scheduled"),
    pytest.param(cluster([unit("web@.service", "A")]), [], {}, id="template-with-target-left-alone"),
    pytest.param(cluster([unit("g.service", Global="true")]), [], {}, id="global-left-to-agents"),
    pytest.param(cluster([unit("g.service", Global="true", MachineMetadata="role=web"), unit("x.service")],
                         [machine("A", role="web"), machine("B")]), ["+x.service@B"], {},
                 id="global-counts-toward-load"),
    pytest.param(cluster([unit("g.service", Global="true", state=INACTIVE), unit("x.service")], "AB"),
                 ["+x.service@A"], {}, id="inactive-global-does-not-count"),
    pytest.param(cluster([unit("g.service", Global="true", Conflicts="x.service"), unit("x.service")], "AB"),
                 [], {"x.service": "conflicts with g.service on every machine"}, id="global-blocks-conflicting"),
    pytest.param(cluster([unit("g.service", Global="true", Conflicts="x.service"), unit("x.service", "A")], "AB"),
                 [], {}, id="global-yields-to-scheduled-conflicting"),
    # -- machine loss and held machines ------------------------------------------------------------------------
    pytest.param(cluster([unit("x.service", "C"), unit("b.service", "B")], "AB"),
                 ["-x.service@C", "+x.service@A"], {}, id="machine-gone-unit-moves"),
    pytest.param(cluster([unit("x.service", "C")], "AB", held="C"), [], {}, id="held-machine-keeps-units"),
    pytest.param(cluster([unit("x.service", "C"), unit("y.service", MachineOf="x.service")], "AB", held="C"),
                 [], {"y.service": "peer x.service is on machine cccc3333, which is not responding"},
                 id="held-machine-takes-nothing-new"),
    # -- MachineID ---------------------------------------------------------------------------------------------
    pytest.param(cluster([unit("a.service", "A"), unit("x.service", MachineID="A")]), ["+x.service@A"], {},
                 id="machine-id-full-beats-load"),
    pytest.param(cluster([unit("x.service", MachineID="B8")]), ["+x.service@B"], {}, id="machine-id-short"),
    pytest.param(cluster([unit("x.service", MachineID="ffff0000")]), [],
                 {"x.service": "MachineID ffff0000 not in the cluster"}, id="machine-id-not-in-cluster"),
    pytest.param(cluster([unit("x.service", "B", MachineID="A")]), ["-x.service@B", "+x.service@A"], {},
                 id="machine-id-mismatch-moves"),
    pytest.param(cluster([unit("x.service", "C", MachineID="C")], "AB"), ["-x.service@C"],
                 {"x.service": f"MachineID {C} not in the cluster"}, id="pinned-machine-gone-stays-unscheduled"),
    # -- MachineOf ---------------------------------------------------------------------------------------------
    pytest.param(cluster([unit("db.service", "B"), unit("a.service", "A"),
                          unit("app.service", MachineOf="db.service")]),
                 ["+app.service@B"], {}, id="machine-of-follows-peer"),
    pytest.param(cluster([unit("a-side.service", MachineOf="z-main.service"), unit("z-main.service"),
                          unit("b.service", "A")]),
                 ["+z-main.service@B", "+a-side.service@B"], {}, id="machine-of-peer-placed-first-same-pass"),
    pytest.param(cluster([unit("ping.service", "C"), unit("pong.service", "C", MachineOf="ping.service")], "AB"),
                 ["-ping.service@C", "-pong.service@C", "+ping.service@A", "+pong.service@A"], {},
                 id="machine-of-pair-moves-together"),
    pytest.param(cluster([unit("x.service", MachineOf="mongo.service")]), [],
                 {"x.service": "peer mongo.service not scheduled (no such unit)"}, id="machine-of-peer-never-exists"),
    pytest.param(cluster([unit("mongo.service", state=INACTIVE), unit("x.service", MachineOf="mongo.service")]), [],
                 {"x.service": "peer mongo.service not scheduled"}, id="machine-of-peer-inactive"),
    pytest.param(cluster([unit("a.service", MachineOf="b.service"), unit("b.service", MachineOf="a.service"),
                          unit("c.service")]),
                 ["+c.service@A"], {"a.service": "MachineOf cycle: a.service -> b.service -> a.service",
                                    "b.service": "MachineOf cycle: b.service -> a.service -> b.service"},
                 id="machine-of-bidirectional-others-still-scheduled"),
    pytest.param(cluster([unit("a.service", "A"), unit("b.service", "B"),
                          unit("x.service", MachineOf=["a.service", "b.service"])]), [],
                 {"x.service": "peers are on different machines: a.service on aaaa1111, b.service on bbbb2222"},
                 id="machine-of-peers-split"),
    pytest.param(cluster([unit("db.service", "A", MachineMetadata="role=db"),
                          unit("app.service", "A", MachineOf="db.service")],
                         [machine("A", role="web"), machine("B", role="db")]),
                 ["-db.service@A", "-app.service@A", "+db.service@B", "+app.service@B"], {},
                 id="machine-of-follower-follows-moved-peer"),
    pytest.param(cluster([unit("db.service", "A"), unit("x.service", "A", Conflicts="app.service"),
                          unit("app.service", MachineOf="db.service")], "AB"), [],
                 {"app.service": "cannot join peer db.service on aaaa1111: conflicts with x.service"},
                 id="machine-of-peer-machine-refuses"),
    # -- MachineMetadata ---------------------------------------------------------------------------------------
    pytest.param(cluster([unit("x.service", MachineMetadata="role=db")],
                         [machine("A", role="web"), machine("B", role="db")]), ["+x.service@B"], {},
                 id="metadata-match"),
    pytest.param(cluster([unit("x.service", MachineMetadata=["role=db", "role=cache"])],
                         [machine("A", role="web"), machine("B", role="cache")]), ["+x.service@B"], {},
                 id="metadata-values-ORed"),
    pytest.param(cluster([unit("x.service", MachineMetadata=["role=db", "region=eu"])],
                         [machine("A", role="db", region="us"), machine("B", role="db", region="eu")]),
                 ["+x.service@B"], {}, id="metadata-keys-ANDed"),
    pytest.param(cluster([unit("x.service", MachineMetadata="role=db"), unit("y.service")],
                         [machine("A", role="web"), machine("B")]), ["+y.service@A"],
                 {"x.service": "no machine has role=db"}, id="metadata-nobody-has-others-still-scheduled"),
    pytest.param(cluster([unit("x.service", "A", MachineMetadata="role=db")],
                         [machine("A", role="web"), machine("B", role="db")]),
                 ["-x.service@A", "+x.service@B"], {}, id="metadata-changed-unit-moves"),
    # -- Conflicts ---------------------------------------------------------------------------------------------
    pytest.param(cluster([unit(f"conflict.{i}.service", Conflicts="conflict.*.service") for i in range(4)]),
                 ["+conflict.0.service@A", "+conflict.1.service@B", "+conflict.2.service@C"],
                 {"conflict.3.service": "conflicts with conflict.0.service, conflict.1.service, conflict.2.service "
                                        "on every machine"}, id="conflicts-glob-spread-then-blocked"),
    pytest.param(cluster([unit("web@1.service", "A"), unit("web@2.service", "B"),
                          unit("x.service", Conflicts="web@*.service")], "AB"), [],
                 {"x.service": "conflicts with web@1.service, web@2.service on every machine"},
                 id="conflicts-on-every-machine"),
    pytest.param(cluster([unit("old.service", "A", Conflicts="new.service"), unit("b1.service", "B"),
                          unit("b2.service", "B"), unit("new.service")], "AB"), ["+new.service@B"], {},
                 id="conflicts-reverse-direction"),
    pytest.param(cluster([unit("a.service", "A", Conflicts="b.service"), unit("b.service", "A")], "AB"),
                 ["-a.service@A", "+a.service@B"], {}, id="conflicting-pair-first-sorted-moves"),
    pytest.param(cluster([unit("x.service", MachineMetadata="role=db"), unit("web.service", "B")],
                         [machine("A", role="web"), machine("B", role="db"), machine("C", role="db")]),
                 ["+x.service@C"], {}, id="metadata-then-least-loaded"),
    pytest.param(cluster([unit("x.service", MachineMetadata="role=db", Conflicts="web.service"),
                          unit("web.service", "B")],
                         [machine("A", role="web"), machine("B", role="db")]), [],
                 {"x.service": "no machine can run it: 1 lacks role=db; 1 has conflicting web.service"},
                 id="mixed-refusals"),
    # -- Replaces ----------------------------------------------------------------------------------------------
    pytest.param(cluster([unit("replace.0.service", "A"), unit("b.service", "B"),
                          unit("replace-kick0.service", Replaces="replace.0.service")], "AB"),
                 ["+replace-kick0.service@A", "-replace.0.service@A", "+replace.0.service@B"], {},
                 id="replaces-takes-machine-kicks-replaced"),
    pytest.param(cluster([unit("new.service", "A", Replaces="old.service"), unit("old.service", "A")], "AB"),
                 ["-old.service@A", "+old.service@B"], {}, id="replaces-both-on-one-machine"),
    pytest.param(cluster([unit("a.service", Replaces="b.service"), unit("b.service", Replaces="a.service")], "AB"),
                 ["+a.service@A", "+b.service@B"], {}, id="replaces-circular-ignored"),
    pytest.param(cluster([unit("a.service", "A", Replaces="b.service"), unit("b.service", "A", Replaces="a.service")],
                         "AB"), [], {}, id="replaces-circular-same-machine-stays"),
    pytest.param(cluster([unit("old.service", "A", MachineID="A"), unit("new.service", Replaces="old.service")],
                         "AB"), ["+new.service@A", "-old.service@A"],
                 {"old.service": f"MachineID {A} cannot run it: new.service replaces it here"},
                 id="replaced-unit-with-nowhere-to-go"),
    pytest.param(cluster([unit("u.service", "A", Replaces="k.service"), unit("k.service", Replaces="j.service"),
                          unit("j.service", "B", Replaces="u.service")], "ABC"),
                 ["+k.service@B", "-j.service@B", "+j.service@C"], {}, id="replaces-chain-terminates"),
    # -- stability ---------------------------------------------------------------------------------------------
    pytest.param(cluster([unit("a1.service", "A"), unit("a2.service", "A"), unit("a3.service", "A")]), [], {},
                 id="unbalanced-but-correct-not-moved"),
    pytest.param(cluster([unit("x.service", "A", MachineID="A8"), unit("p.service", "B"),
                          unit("q.service", "B", MachineOf="p.service")]), [], {},
                 id="correct-constraints-not-moved"),
]


@pytest.mark.parametrize(("state", "expected", "unplaced"), CASES)
def test_plan(state: ClusterState, expected: list[str], unplaced: dict[str, str]) -> None:
    result = plan(state)
    assert steps(result) == expected
    assert dict(result.unplaced) == unplaced


def test_every_task_has_a_reason_and_plan_cluster_returns_them() -> None:
    state = cluster([unit("x.service", "C"), unit("y.service", "A", state=INACTIVE), unit("z.service")], "AB")
    tasks = plan_cluster(state)
    assert tasks == list(plan(state).tasks)
    assert [t.reason for t in tasks] == ["machine cccc3333 is gone", "target state inactive",
                                         "least loaded of 2 able machines", "least loaded of 2 able machines"]
    assert all(isinstance(t, Task) for t in tasks)


def test_plan_does_not_change_the_snapshot() -> None:
    state = cluster([unit("x.service", "C"), unit("z.service")], "AB")
    before = dict(state.units)
    plan(state)
    assert dict(state.units) == before


def test_plan_is_deterministic() -> None:
    units = [unit(f"u{i}.service", Conflicts="u1*.service") for i in range(30)]
    assert plan(cluster(units)) == plan(cluster(list(reversed(units))))


def test_task_str_is_the_log_line() -> None:
    task = Task(TaskKind.SCHEDULE, "web@1.service", A, "least loaded of 3 able machines")
    assert str(task) == 'schedule web@1.service -> aaaa1111 reason="least loaded of 3 able machines"'
    task = Task(TaskKind.UNSCHEDULE, "web@1.service", B, "machine bbbb2222 is gone")
    assert str(task) == 'unschedule web@1.service from bbbb2222 reason="machine bbbb2222 is gone"'


def test_a_new_leader_replans_nothing_after_applying_a_plan() -> None:
    """Apply a busy plan, plan again from the result: nothing moves (no stampede on a leader change)."""
    units = [unit(f"conflict.{i}.service", Conflicts="conflict.*.service") for i in range(3)]
    units += [unit("ping.service"), unit("pong.service", MachineOf="ping.service"),
              unit("db.service", MachineMetadata="role=db"), unit("old.service"),
              unit("new.service", Replaces="old.service"), unit("x.service", MachineOf="nothing.service")]
    machines = [machine("A", role="db"), machine("B"), machine("C"), machine("D")]
    first = plan(cluster(units, machines))
    targets: dict[str, str | None] = {}
    for task in first.tasks:
        targets[task.unit] = task.machine_id if task.kind is TaskKind.SCHEDULE else None
    again = [UnitSpec.of(u.name, u.requirements, u.target_state, targets.get(u.name)) for u in units]
    second = plan(cluster(again, machines))
    assert second.tasks == ()
    assert second.unplaced == first.unplaced
