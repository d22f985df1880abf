"""The pure scheduler at scale: 10,000 units on 1,000 simulated machines with mixed constraints (no etcd)."""

from __future__ import annotations

import random

from bench.common import Figure
from bench.scheduler_bench import applied, make_machines, make_units, timed
from fleetpy.engine.cluster import ClusterState, UnitSpec
from fleetpy.model.job import Requirements
from fleetpy.model.records import JobState


def run(quick: bool) -> list[Figure]:
    units, machines_n, repeat = (2_000, 200, 2) if quick else (10_000, 1_000, 3)
    rng = random.Random(1289)
    machines = make_machines(machines_n, rng)
    fresh = ClusterState.of(make_units(units, machines, rng), machines)
    result, full = timed(fresh, repeat)
    placed = applied(fresh, result)
    _, steady = timed(placed, repeat)
    gone = {m.id for m in rng.sample(machines, max(1, machines_n // 100))}
    shrunk = ClusterState.of(placed.units.values(), [m for m in machines if m.id not in gone])
    _, loss = timed(shrunk, repeat)
    size = f"{units} units / {machines_n} machines"
    few = machines[:3]  # the lab's shape: many plain units per machine (a pass was O(units^2 / machines) before)
    crowded = ClusterState.of([UnitSpec.of(f"burst@{i}.service", Requirements(), JobState.LAUNCHED, few[i % 3].id)
                               for i in range(1_000)], few)
    _, dense = timed(crowded, repeat)
    return [
        Figure("scheduler", f"full placement, {size}", "s", full, reference="no figure (serial, random order)",
               target="< 5 s", target_value=5.0, note=f"{len(result.unplaced)} units unplaceable by design"),
        Figure("scheduler", f"steady-state pass, {size}", "s", steady),
        Figure("scheduler", f"pass after {len(gone)} machines vanished, {size}", "s", loss),
        Figure("scheduler", "steady-state pass, 1000 plain units / 3 machines", "s", dense,
               note="66.7 ms when each check scanned all of a machine's units"),
    ]
