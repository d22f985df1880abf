"""A SIGKILLed agent's unit states, seen through ``fleetpy list-units`` (states carry no TTL since issue 4's idle
cost work: the leading engine sweeps a dead machine's states once its machine key expires).

The agent on a node that runs units and does not lead is SIGKILLed: its units keep running there, but once its
machine key expires (``agent_ttl``) ``list-units`` no longer shows that machine's states (the engine swept them)
and the units show active elsewhere; a global unit is shown on the live machines only. fleetpyd started again
re-registers and publishes its states again: the global unit shows on it again, and the moved units once each.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from fleetpy.lab import Lab
from tests.reliability.harness import AGENT_TTL, Fleet, body, fleet_on, fleetpy, lab_kwargs, wait_for

pytestmark = pytest.mark.lab
UNITS = [f"s{i}.service" for i in range(6)]
GLOBAL = "everywhere.service"


def listed(fleet: Fleet) -> list[tuple[str, str, str]]:
    """``fleetpy list-units`` rows as (unit, node, active); exit 0 required."""
    proc = fleetpy(fleet.lab, "list-units", "--no-legend", "--full", "--fields", "unit,machine,active")
    assert proc.returncode == 0, proc.stderr
    rows = []
    for line in proc.stdout.splitlines():
        unit, machine, active = line.split()
        rows.append((unit, fleet.nodes.get(machine.split("/")[0], machine), active))
    return sorted(rows)


def test_killed_agent_states_are_swept_after_the_ttl_and_come_back_with_it(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(**lab_kwargs())
    with fleet_on(lab) as fleet:
        fleet.start(UNITS)
        fleet.start([GLOBAL], body(xfleet="Global=true"))
        before = fleet.wait_placed(UNITS)
        wait_for("the global unit on every node", lambda: sorted(
            n for u, n, a in listed(fleet) if u == GLOBAL and a == "active") == sorted(lab.nodes))
        leader = fleet.leader()
        victim = next(node for node in sorted(set(before.values())) if node != leader)
        orphans = sorted(n for n, node in before.items() if node == victim)
        pids = fleet.where(orphans, [victim])
        killed = time.monotonic()
        lab.stop_agent(victim, "SIGKILL")
        wait_for("fleetpyd dead", lambda: lab.agent_pid(victim) is None, timeout=10)
        assert any(node == victim for _, node, _ in listed(fleet)), "states gone before the machine key expired"

        def swept() -> bool:
            rows = listed(fleet)
            shown = [u for u, _, a in rows if a == "active"]
            return (all(node != victim for _, node, _ in rows) and sorted(shown) == sorted([*UNITS, *[GLOBAL] * 2])
                    and len(set(shown) - {GLOBAL}) == len(UNITS))
        wait_for("the victim's states swept and its units active elsewhere, once each", swept,
                 explain=lambda: "\n".join(map(str, listed(fleet))))
        gone = time.monotonic() - killed
        assert gone >= AGENT_TTL / 2, "swept before the machine key could have expired"
        assert fleet.where(orphans, [victim]) == pids, "a SIGKILLed agent's units keep running where they were"
        assert fleet.registry.job(orphans[0]).job_state not in (None, fleet.ids[victim])  # type: ignore[union-attr]
        assert f"SweepKey key=/_coreos.com/fleet/states/{orphans[0]}/{fleet.ids[victim]}" in fleet.journal(
            fleet.leader() or "")
        restarted = time.monotonic()
        lab.start_agent(victim)
        back = wait_for("the victim's global unit state back", lambda: (GLOBAL, victim, "active") in listed(fleet))
        wait_for("the moved copies stopped on the victim", lambda: fleet.where(orphans, [victim]) == {
            n: {} for n in orphans})
        rows = listed(fleet)
        assert sorted(u for u, _, a in rows if a == "active") == sorted([*UNITS, *[GLOBAL] * 3]), rows
        assert all(node != victim for u, node, _ in rows if u != GLOBAL), rows
        print(f"\nRELIABILITY state sweep: victim's states gone from list-units {gone:.2f}s after SIGKILL "
              f"(agent_ttl {AGENT_TTL}s); back {back:.2f}s after the agent restart ({time.monotonic() - restarted:.2f}s"
              f" until its orphaned copies were stopped)")
