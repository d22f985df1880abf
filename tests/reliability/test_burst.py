"""A burst of ``fleetpy start`` calls from 10 concurrent clients (fault 7 of docs/reliability.md).

10 threads each start their own share of the units with ``fleetpy start --no-block`` (the installed script, 4
invocations per client, instances of a template the client has on disk), all at once. Every unit must end
active exactly once: one published state per unit, active, on the machine it is scheduled to; systemd on exactly
one node runs it; the engines scheduled it once (one ``engine: schedule`` line across every node's journal) and no
agent ever stopped or unloaded it. 300 units in the default run, 1,000 under ``slow``.
"""

from __future__ import annotations

import pathlib
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from fleetpy.lab import Lab
from tests.reliability.harness import RUNNING, Fleet, fleet_on, fleetpy, lab_kwargs, wait_for

pytestmark = pytest.mark.lab
CLIENTS = 10
CALLS = 4  # CLI invocations per client
# fleet's default agent_ttl: the burst is about the clients and the schedulers, not about machine losses (a loaded
# 2-core host can starve a heartbeat past the fault labs' 5 s TTL, and the engine then rightly moves its units)
BURST_LAB = lab_kwargs(agent_ttl="30s")
TEMPLATE = "[Unit]\nDescription=burst %i\n[Service]\nExecStart=/bin/sleep 100000\n"


def active_on(fleet: Fleet, node: str) -> list[str]:
    """The burst units systemd runs on ``node``."""
    proc = fleet.lab.exec(node, ["systemctl", "list-units", "--type=service", "--state=active", "--plain",
                                 "--no-legend", "--no-pager", "c*@*.service"], timeout=60)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def one_client(lab: Lab, directory: pathlib.Path, client: int, names: list[str]) -> list[str]:
    """Start ``names`` in CALLS invocations; the failures (as text)."""
    errors = []
    share = -(-len(names) // CALLS)
    for i in range(0, len(names), share):
        proc = fleetpy(lab, "start", "--no-block", *names[i:i + share], cwd=str(directory), timeout=180)
        if proc.returncode != 0 or proc.stderr:
            errors.append(f"client {client}: exit {proc.returncode}: {proc.stderr.strip()[:500]}")
        expected = [f"Unit {n} inactive" for n in names[i:i + share]] + [
            f"Triggered unit {n} start" for n in names[i:i + share]]
        lines = proc.stdout.splitlines()
        if sorted(lines) != sorted(expected):
            errors.append(f"client {client}: unexpected output {lines[:3]}...")
    return errors


def burst(lab: Lab, tmp_path: pathlib.Path, total: int) -> None:
    with fleet_on(lab) as fleet:
        per_client = total // CLIENTS
        shares = {}
        for client in range(CLIENTS):
            directory = tmp_path / f"client{client}"
            directory.mkdir()
            (directory / f"c{client}@.service").write_text(TEMPLATE)
            shares[client] = (directory, [f"c{client}@{i}.service" for i in range(per_client)])
        names = sorted(n for _, share in shares.values() for n in share)
        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = pool.map(lambda c: one_client(lab, shares[c][0], c, shares[c][1]), range(CLIENTS))
            errors = [e for r in results for e in r]
        submitted = time.monotonic() - started
        assert errors == []
        wait_for(f"{total} units active", lambda: len(fleet.placement()) == total, timeout=120, step=1.0,
                 explain=lambda: fleet.diagnose(names))
        settled = time.monotonic() - started
        time.sleep(2.0)
        # registry view: exactly one state per unit, active and running, on the machine it is scheduled to
        states = fleet.registry.unit_states()
        per_unit = Counter(s.name for s in states)
        assert sorted(per_unit) == names and set(per_unit.values()) == {1}
        assert all((s.load_state, s.active_state, s.sub_state) == RUNNING for s in states)
        placement = fleet.placement()
        assert sorted(placement) == names
        # systemd view: every unit active on exactly one node, the one the registry says
        seen = {node: active_on(fleet, node) for node in lab.nodes}
        where = Counter(n for units in seen.values() for n in units)
        assert sorted(where) == names and set(where.values()) == {1}
        assert all(placement[n] == node for node, units in seen.items() for n in units)
        # decisions: one schedule per unit across the whole cluster, never a stop or an unload of a burst unit
        lines = "".join(fleet.journal(node) for node in lab.nodes).splitlines()
        schedules = Counter(line.split("engine: schedule ")[1].split()[0] for line in lines  # a lost CAS is
                            if "engine: schedule " in line and "skipped: changed meanwhile" not in line)  # no write
        assert sorted(schedules) == names
        again = sorted(schedules - Counter(names))
        assert not again, [line for line in lines if any(f" {n} " in line for n in again[:2])][:20]
        undone = [line for line in lines if ("task UnloadUnit unit=c" in line or "task StopUnit unit=c" in line)]
        assert undone == [], undone[:20]
        # a StartUnit may be repeated (a reply lost under load is retried; systemd ignores a start of an active
        # unit): reported, not failed on
        starts = Counter(line.split("unit=")[1].split()[0] for line in lines if "task StartUnit unit=" in line)
        repeated = sorted(n for n, c in starts.items() if c > 1)
        if repeated:
            print(f"\nRELIABILITY burst-{total}: {len(repeated)} units got more than one StartUnit, e.g.",
                  *[line for line in lines if f"unit={repeated[0]} " in line], sep="\n  ")
        spread = {node: len(units) for node, units in seen.items()}
        print(f"\nRELIABILITY burst-{total}: {CLIENTS} clients x {CALLS} `start --no-block` calls returned in "
              f"{submitted:.1f}s; all {total} active {settled:.1f}s after the first call; per node {spread}")


def test_burst_of_300_starts_from_10_clients(lab_factory: Callable[..., Lab], tmp_path: pathlib.Path) -> None:
    burst(lab_factory(**BURST_LAB), tmp_path, 300)


@pytest.mark.slow
def test_burst_of_1000_starts_from_10_clients(lab_factory: Callable[..., Lab], tmp_path: pathlib.Path) -> None:
    burst(lab_factory(**BURST_LAB), tmp_path, 1000)
