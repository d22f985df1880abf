"""Scheduler benchmark: place 10,000 units on 1,000 simulated machines with mixed constraints (pure layer only).

``python -m bench.scheduler_bench [--units N] [--machines N] [--repeat N] [--profile]``. Prints the time of a
full placement from scratch (target < 5 s), of a steady-state pass (everything already placed) and of a pass
after 1% of the machines vanished. No etcd, no threads: ``ClusterState`` -> ``plan`` only.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import re
import statistics
import time
from collections import Counter
from dataclasses import replace

from fleetpy.engine.cluster import ClusterState, UnitSpec
from fleetpy.engine.plan import Plan, TaskKind, plan
from fleetpy.model.job import Requirements
from fleetpy.model.records import JobState, MachineState

ROLES = ("web", "web", "web", "db", "cache", "worker", "worker")
REGIONS = ("us", "eu", "ap")


def make_machines(n: int, rng: random.Random) -> list[MachineState]:
    return [MachineState(f"{rng.getrandbits(128):032x}",
                         metadata={"role": rng.choice(ROLES), "region": rng.choice(REGIONS)}) for _ in range(n)]


def make_units(n: int, machines: list[MachineState], rng: random.Random) -> list[UnitSpec]:
    """A mix: plain, metadata (ORed and ANDed), conflict groups, MachineOf pairs, pinned, Replaces, global,
    and a few that can never be placed (metadata nobody has, a peer that never exists, a MachineOf cycle)."""
    specs: list[UnitSpec] = []

    def add(name: str, **kw: object) -> None:
        specs.append(UnitSpec.of(name, Requirements(**kw), JobState.LAUNCHED, None))  # type: ignore[arg-type]

    for i in range(5):
        add(f"global-{i}.service", is_global=True, metadata={"role": ("web",)} if i % 2 else {})
    i = 0
    while len(specs) < n:
        kind = rng.random()
        if kind < 0.45:
            add(f"plain-{i}.service")
        elif kind < 0.60:
            meta = {"role": (rng.choice(ROLES),)} if rng.random() < 0.5 else {
                "role": ("db", "cache"), "region": (rng.choice(REGIONS),)}
            add(f"meta-{i}.service", metadata=meta)
        elif kind < 0.70:
            group = i % 20
            add(f"spread{group}@{i}.service", conflicts=(f"spread{group}@*.service",))
        elif kind < 0.85:
            add(f"app-{i}.service")
            add(f"side-{i}.service", peers=(f"app-{i}.service",))
        elif kind < 0.88:
            mid = rng.choice(machines).id
            add(f"pinned-{i}.service", machine_id=mid if rng.random() < 0.5 else mid[:8])
        elif kind < 0.91:
            add(f"new-{i}.service", replaces=(f"old-{i}.service",))
            add(f"old-{i}.service")
        elif kind < 0.995:
            add(f"more-{i}.service", conflicts=("spread0@*.service",) if rng.random() < 0.1 else ())
        elif kind < 0.997:
            add(f"gpu-{i}.service", metadata={"role": ("gpu",)})
        elif kind < 0.999:
            add(f"orphan-{i}.service", peers=(f"missing-{i}.service",))
        else:
            add(f"loop-a-{i}.service", peers=(f"loop-b-{i}.service",))
            add(f"loop-b-{i}.service", peers=(f"loop-a-{i}.service",))
        i += 1
    return specs


def applied(cluster: ClusterState, result: Plan) -> ClusterState:
    """The cluster after the plan's schedule changes were written."""
    targets = {name: spec.target for name, spec in cluster.units.items()}
    for task in result.tasks:
        targets[task.unit] = task.machine_id if task.kind is TaskKind.SCHEDULE else None
    specs = [replace(spec, target=targets[name]) for name, spec in cluster.units.items()]
    return ClusterState.of(specs, cluster.machines.values())


def timed(cluster: ClusterState, repeat: int) -> tuple[Plan, list[float]]:
    samples = []
    result = Plan()
    for _ in range(repeat):
        start = time.perf_counter()
        result = plan(cluster)
        samples.append(time.perf_counter() - start)
    return result, samples


def report(label: str, samples: list[float], result: Plan) -> None:
    kinds = Counter(t.kind for t in result.tasks)
    print(f"{label:<34} median {statistics.median(samples):7.3f} s  min {min(samples):7.3f} s  "
          f"({kinds[TaskKind.SCHEDULE]} schedule, {kinds[TaskKind.UNSCHEDULE]} unschedule, "
          f"{len(result.unplaced)} unplaced)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler_bench")
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--machines", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1289)
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile of one full placement")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    machines = make_machines(args.machines, rng)
    fresh = ClusterState.of(make_units(args.units, machines, rng), machines)
    print(f"{len(fresh.units)} units, {len(fresh.machines)} machines")

    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(plan, fresh)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(18)

    result, samples = timed(fresh, args.repeat)
    report("full placement from scratch", samples, result)
    placed = applied(fresh, result)
    steady, samples = timed(placed, args.repeat)
    report("steady state (nothing to do)", samples, steady)
    gone = {m.id for m in rng.sample(machines, max(1, args.machines // 100))}
    shrunk = ClusterState.of(placed.units.values(), [m for m in machines if m.id not in gone])
    loss, samples = timed(shrunk, args.repeat)
    report(f"{len(gone)} machines gone", samples, loss)
    reasons = Counter(re.sub(r"\d+", "N", r) for r in result.unplaced.values())
    for reason, count in reasons.most_common(6):
        print(f"  unplaced x{count}: {reason}")
    target_met = statistics.median(timed(fresh, 1)[1]) < 5.0
    print(f"target < 5 s for the full placement: {'met' if target_met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
