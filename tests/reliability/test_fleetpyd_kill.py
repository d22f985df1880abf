"""fleetpyd killed with SIGKILL (faults 1 and 2 of docs/reliability.md): the engine leader, then a plain agent.

What ran where is checked before, during and after through each node's systemd (MainPID, ActiveState) and through
every change of ``job/<u>/target``: a SIGKILLed fleetpyd leaves its units running (they are not its children); a
new engine leader takes the lease within its TTL; nothing is moved or restarted while the dead agent's machine
key lives; once that key expires its units move exactly once, and the agent, started again, stops the copies that
moved away (fleet #440: fleet left them running for ever).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from fleetpy.lab import Lab
from tests.reliability.harness import LEASE_TTL, RECONCILE, Fleet, Sampler, TargetLog, fleet_on, lab_kwargs, wait_for

pytestmark = pytest.mark.lab
UNITS = [f"k{i}.service" for i in range(6)]


def test_killed_engine_leader_hands_over_and_moves_nothing_while_its_machine_lives(
        lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(**lab_kwargs(agent_ttl="16s"))  # the machine key (refreshed every 8 s) outlives the lease
    with fleet_on(lab) as fleet:
        fleet.start(UNITS)
        before = fleet.wait_placed(UNITS)
        leader = fleet.leader()
        assert leader is not None
        pids = fleet.pids(UNITS)
        with Sampler(fleet, UNITS) as sampler, TargetLog(fleet) as targets:
            time.sleep(0.5)
            killed = time.monotonic()
            lab.stop_agent(leader, "SIGKILL")
            handover = wait_for("a new engine leader", lambda: fleet.leader() not in (None, leader))
            # the lease TTL (3 s) plus one engine tick; 2.5 s of slack for a loaded machine
            assert handover <= LEASE_TTL + RECONCILE + 2.5, handover
            assert fleet.ids[leader] in {m.id for m in fleet.registry.machines()}, "machine key gone too early"
            assert fleet.pids(UNITS) == pids  # every unit where it was, same process, the dead leader's included
            assert targets.changes == []
            # the machine key expires (16 s TTL, refreshed every 8 s): only the dead machine's units move
            orphans = sorted(n for n, node in before.items() if node == leader)
            wait_for("the dead machine's units active elsewhere", lambda: all(
                fleet.placement().get(n) not in (None, leader) for n in orphans))
            moved = time.monotonic() - killed
            after = fleet.placement()
            assert {n: targets.of(n) for n in orphans} == {n: [None, after[n]] for n in orphans}
            assert set(targets.moves()) == set(orphans)
            where = fleet.where(UNITS)
            assert all(where[n][leader] == pids[n][1] for n in orphans), "a SIGKILLed agent's units keep running"
            # fleetpyd comes back: it stops the copies that were moved away while it was dead
            restarted = time.monotonic()
            lab.start_agent(leader)
            cleanup = wait_for("the orphaned copies stopped", lambda: all(
                len(w) == 1 for w in fleet.where(UNITS).values()), explain=lambda: fleet.diagnose(UNITS))
            started = _last_run(fleet, leader)
            assert all(f"task UnloadUnit unit={n}" in started for n in orphans), started
            time.sleep(1.0)
        end = fleet.pids(UNITS)
        for name in set(UNITS) - set(orphans):
            assert end[name] == pids[name], f"{name} was moved or restarted"
        for name in orphans:
            assert end[name][0] == after[name] != leader
        assert sampler.restarts() == {}
        assert set(sampler.duplicates()) <= set(orphans)
        assert max(sampler.duplicates(restarted).values(), default=0.0) <= cleanup + 0.5
        print(f"\nRELIABILITY leader-kill: new leader after {handover:.2f}s; {len(orphans)} units active elsewhere "
              f"{moved:.2f}s after the kill; orphans stopped {cleanup:.2f}s after the agent restart")


def test_agent_killed_and_restarted_within_its_ttl_changes_nothing(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(**lab_kwargs(agent_ttl="10s"))  # back within 5 s even on a loaded machine
    with fleet_on(lab) as fleet:
        fleet.start(UNITS)
        before = fleet.wait_placed(UNITS)
        leader = fleet.leader()
        victim = next(node for node in sorted(set(before.values())) if node != leader)
        pids = fleet.pids(UNITS)
        with Sampler(fleet, UNITS) as sampler, TargetLog(fleet) as targets:
            time.sleep(0.5)
            lab.stop_agent(victim, "SIGKILL")
            wait_for("fleetpyd dead", lambda: lab.agent_pid(victim) is None, timeout=10)
            assert fleet.pids(UNITS) == pids
            restarted = time.monotonic()
            lab.start_agent(victim)
            back = wait_for("the agent running again", lambda: "running as machine" in _last_run(fleet, victim))
            # its states (no TTL) stayed; the new run takes them over and rewrites only what changed
            states = wait_for("every state back", lambda: fleet.placement() == before, timeout=10,
                              explain=lambda: fleet.diagnose(UNITS))
            states += back
            # a change wakes the agent: its next pass must find nothing to do
            fleet.start(["after-kill.service"])
            fleet.wait_placed(["after-kill.service"])
            time.sleep(2.0)
            assert time.monotonic() - restarted < 30
        assert fleet.placement() == {**before, "after-kill.service": fleet.placement()["after-kill.service"]}
        assert fleet.pids(UNITS) == pids
        assert sampler.restarts() == {} and sampler.duplicates() == {}
        assert set(targets.moves()) == {"after-kill.service"}
        last_run = _last_run(fleet, victim)
        assert "took over the registration" in last_run
        assert not any(f"unit={n}" in last_run for n in UNITS), last_run
        print(f"\nRELIABILITY agent-kill: agent running again {back:.2f}s after its restart, every state shown "
              f"{states:.2f}s after it; 0 moves, 0 restarts")


def _last_run(fleet: Fleet, node: str) -> str:
    return fleet.journal(node).split("Started fleetpyd")[-1]
