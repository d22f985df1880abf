"""A node lost, then back (faults 3 and 4 of docs/reliability.md): a clean poweroff, and a network cut longer than
``agent_ttl``.

What ran where is checked before, during and after through each node's systemd (``Sampler``: MainPID and
ActiveState of every unit on every node, every 0.2 s) and through every change of ``job/<u>/target``
(``TargetLog``). Exactly the lost node's units move, once each; the units elsewhere are never touched. A powered
off node's units die with it, so no unit ever runs twice. A cut node's units keep running (its agent cannot tell a
cut from an etcd outage, fleet #708) while the engine starts them elsewhere; on heal the returning agent finds
them scheduled elsewhere and stops them (fleet #440 done right): the two-copies window after the heal is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from fleetpy.lab import Lab
from tests.reliability.harness import AGENT_TTL, Fleet, Sampler, TargetLog, fleet_on, lab_kwargs, wait_for

pytestmark = pytest.mark.lab
UNITS = [f"n{i}.service" for i in range(6)]


def _victim(fleet: Fleet, placement: dict[str, str]) -> str:
    """A node that hosts units and does not lead the engine (leader loss is test_fleetpyd_kill's subject)."""
    leader = fleet.leader()
    return next(node for node in sorted(set(placement.values())) if node != leader)


def _active_states(fleet: Fleet) -> dict[str, list[str]]:
    """Registry view: unit -> the nodes whose published state says active (what list-units shows)."""
    out: dict[str, list[str]] = {}
    for s in fleet.registry.unit_states():
        if s.active_state == "active":
            out.setdefault(s.name, []).append(fleet.nodes.get(s.machine_id, s.machine_id))
    return out


def test_poweroff_moves_exactly_its_units_once_and_nothing_runs_twice(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(**lab_kwargs())
    with fleet_on(lab) as fleet:
        fleet.start(UNITS)
        before = fleet.wait_placed(UNITS)
        victim = _victim(fleet, before)
        lost = sorted(n for n, node in before.items() if node == victim)
        kept = sorted(set(UNITS) - set(lost))
        pids = fleet.pids(UNITS)
        with Sampler(fleet, UNITS) as sampler, TargetLog(fleet) as targets:
            time.sleep(0.5)
            off = time.monotonic()
            lab.poweroff(victim)
            down = time.monotonic() - off
            wait_for("the lost units active elsewhere", lambda: all(
                fleet.placement().get(n) not in (None, victim) for n in lost))
            moved = time.monotonic() - off
            after = fleet.placement()
            assert {n: targets.of(n) for n in lost} == {n: [None, after[n]] for n in lost}
            assert set(targets.moves()) == set(lost)
            moved_pids = fleet.pids(UNITS)
            # the node boots again (same machine-id), its fleetpyd registers: nothing comes back, nothing doubles
            booted = time.monotonic()
            lab.start(victim)
            back = wait_for("the machine registered again", lambda: fleet.machines() == set(lab.nodes))
            time.sleep(3.0)  # several agent and engine passes
            assert fleet.pids(UNITS) == moved_pids
            assert set(targets.moves()) == set(lost)
            # the returning machine is the least loaded: a new unit goes there
            fleet.start(["after-boot.service"])
            assert fleet.wait_placed(["after-boot.service"]) == {"after-boot.service": victim}
        for name in kept:
            assert fleet.placement()[name] == before[name] and moved_pids[name] == pids[name]
        assert sampler.duplicates() == {}, sampler.duplicates()
        assert sampler.restarts() == {}
        assert all(copies <= {before[n], after[n]} for n, copies in sampler.copies().items())
        print(f"\nRELIABILITY poweroff: node off in {down:.2f}s; {len(lost)} units active elsewhere {moved:.2f}s "
              f"after the poweroff; machine back {back:.2f}s after boot (boot at +{booted - off:.1f}s); "
              f"longest two-copies window 0 s")


def test_cut_longer_than_ttl_moves_its_units_and_heal_stops_the_old_copies(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(**lab_kwargs())
    with fleet_on(lab) as fleet:
        fleet.start(UNITS)
        before = fleet.wait_placed(UNITS)
        victim = _victim(fleet, before)
        lost = sorted(n for n, node in before.items() if node == victim)
        kept = sorted(set(UNITS) - set(lost))
        pids = fleet.pids(UNITS)
        with Sampler(fleet, UNITS) as sampler, TargetLog(fleet) as targets:
            time.sleep(0.5)
            cut = time.monotonic()
            lab.cut(victim)
            wait_for("the cut node's units active elsewhere", lambda: all(
                fleet.placement().get(n) not in (None, victim) for n in lost))
            moved = time.monotonic() - cut
            assert moved >= AGENT_TTL / 2, "moved before the machine key could have expired"
            after = fleet.placement()
            where = fleet.where(UNITS)
            # cut off, the agent keeps its units running (it cannot tell a cut from an etcd outage)
            assert all(where[n].get(victim) == pids[n][1] for n in lost), where
            # stay cut past the agent's watch timeout (10 s), so its watches fail and re-read on heal
            time.sleep(max(0.0, 12.0 - (time.monotonic() - cut)))
            new_pids = {n: fleet.where([n])[n][after[n]] for n in lost}
            healed = time.monotonic()
            lab.heal(victim)
            stopped = wait_for("the old copies stopped", lambda: all(
                len(w) <= 1 for w in fleet.where(UNITS).values()))
            registry = wait_for("one active state per unit", lambda: all(
                len(nodes) == 1 for nodes in _active_states(fleet).values()))
            registry += stopped
            wait_for("the machine back", lambda: fleet.machines() == set(lab.nodes))
            time.sleep(3.0)
            assert set(targets.moves()) == set(lost)
            assert {n: targets.of(n) for n in lost} == {n: [None, after[n]] for n in lost}
        end = fleet.pids(UNITS)
        for name in kept:
            assert end[name] == pids[name], f"{name} was moved or restarted"
        for name in lost:
            assert end[name] == (after[name], new_pids[name]), f"{name}'s new copy was moved or restarted"
        assert fleet.placement() == after
        assert sampler.restarts() == {}
        window = max(sampler.duplicates(healed).values(), default=0.0)
        assert set(sampler.duplicates()) <= set(lost)
        assert window <= 15.0, sampler.duplicates(healed)
        journal = fleet.journal(victim)
        assert all(f"task UnloadUnit unit={n}" in journal for n in lost)
        print(f"\nRELIABILITY cut: {len(lost)} units active elsewhere {moved:.2f}s after the cut; cut for "
              f"{healed - cut:.1f}s; old copies stopped {stopped:.2f}s after heal (sampled window {window:.2f}s); "
              f"registry shows one active state per unit {registry:.2f}s after heal")
