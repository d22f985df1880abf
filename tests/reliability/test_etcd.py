"""etcd trouble (faults 5 and 6 of docs/reliability.md): a 3-member cluster losing its leader, then its quorum; a
single member down for half a minute.

etcd is fleetpy's only shared state, so these are the faults that expire every TTL at once (fleet #1289: fleet's
engine then rescheduled everything). What is checked is that units keep running throughout (same MainPID on the
same node, never a second copy), that no ``job/<u>/target`` changes, that the CLI says the registry is unreachable
in one line with exit 1 instead of printing stale data, and that everything reconverges once etcd is back.
The engine's side of it (``LossDamper``: machines found missing right after etcd was unreachable for long enough to
expire an agent are held, not moved, while their agents re-register one by one) is also checked without a lab.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time
from collections.abc import Callable

import pytest

from fleetpy.engine.damper import LossDamper
from fleetpy.lab import Lab
from fleetpy.model.records import JobState
from tests.reliability.harness import AGENT_TTL, Fleet, Sampler, TargetLog, fleet_on, fleetpy, lab_kwargs, wait_for

UNITS = [f"e{i}.service" for i in range(6)]
UNIT_FILE = "[Unit]\nDescription=started during an etcd fault\n[Service]\nExecStart=/bin/sleep 100000\n"


def etcd_leader(lab: Lab) -> str:
    """The lab member name (``etcd2``) of the current etcd raft leader, from ``etcdctl endpoint status``."""
    proc = subprocess.run(["etcdctl", "--endpoints", ",".join(lab.etcd_endpoints), "endpoint", "status", "-w",
                           "json"], capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"},
                          timeout=30, check=False)
    statuses = json.loads(proc.stdout or "[]")
    names = dict(zip(lab.etcd_endpoints, (m.name for m in lab.record.etcd), strict=True))
    for status in statuses:
        if status["Status"]["header"]["member_id"] == status["Status"]["leader"]:
            return names[status["Endpoint"]]
    raise AssertionError(f"no etcd leader: {proc.stdout} {proc.stderr}")


def one_line_outage(lab: Lab) -> float:
    """``fleetpy list-units`` while etcd cannot answer: nothing on stdout, one line on stderr, exit 1."""
    started = time.monotonic()
    proc = fleetpy(lab, "list-units")
    took = time.monotonic() - started
    assert (proc.returncode, proc.stdout) == (1, ""), (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: "), proc.stderr
    assert "etcd" in proc.stderr and "Traceback" not in proc.stderr
    return took


def converged(fleet: Fleet, names: list[str], idle: tuple[str, ...] = ()) -> bool:
    """Every machine registered, and list-units (exit 0) shows each of ``names`` active once, on its target (and
    each of ``idle`` once, not active)."""
    if fleet.machines() != set(fleet.lab.nodes) or set(fleet.placement()) < set(names):
        return False
    proc = fleetpy(fleet.lab, "list-units", "--no-legend", "--fields", "unit,active")
    rows = dict(line.split() for line in proc.stdout.splitlines())
    return proc.returncode == 0 and len(proc.stdout.splitlines()) == len(rows) == len(names) + len(idle) and all(
        rows.get(n) == "active" for n in names) and all(rows.get(n) not in (None, "active") for n in idle)


@pytest.mark.lab
def test_three_members_survive_losing_the_leader_then_quorum(lab_factory: Callable[..., Lab],
                                                             tmp_path: pathlib.Path) -> None:
    lab = lab_factory(**lab_kwargs(etcd_members=3))
    (tmp_path / "during.service").write_text(UNIT_FILE)
    with fleet_on(lab) as fleet:
        fleet.start(UNITS)
        fleet.wait_placed(UNITS)
        pids = fleet.pids(UNITS)
        with Sampler(fleet, [*UNITS, "during.service"]) as sampler, TargetLog(fleet) as targets:
            first = etcd_leader(lab)
            lab.etcd_stop(first)
            started = time.monotonic()
            proc = fleetpy(lab, "start", "during.service", cwd=str(tmp_path))  # blocks until systemd runs it
            start_took = time.monotonic() - started
            assert proc.returncode == 0, proc.stderr
            where = fleet.where(["during.service"])["during.service"]
            assert len(where) == 1, where
            assert fleet.pids(UNITS) == pids
            # quorum lost: agents keep every unit running, the CLI says so in one line
            second = next(m.name for m in lab.record.etcd if m.name != first)
            lab.etcd_stop(second)
            lost = time.monotonic()
            outage_cli = one_line_outage(lab)
            time.sleep(max(0.0, 2 * AGENT_TTL - (time.monotonic() - lost)))  # every TTL would have expired
            assert fleet.pids(UNITS) == pids
            assert fleet.where(["during.service"])["during.service"] == where
            lab.etcd_start(first)
            lab.etcd_start(second)
            back = time.monotonic()
            reconverged = wait_for("reconverged", lambda: converged(fleet, [*UNITS, "during.service"]), 60, 0.5)
            time.sleep(2.0)
        assert fleet.pids(UNITS) == pids
        assert fleet.where(["during.service"])["during.service"] == where
        assert set(targets.moves()) == {"during.service"} and len(targets.of("during.service")) == 1
        assert sampler.restarts() == {} and sampler.duplicates() == {}
        for node in lab.nodes:
            assert "task UnloadUnit" not in fleet.journal(node)
        print(f"\nRELIABILITY etcd-3: leader {first} stopped: `fleetpy start` of a new unit took {start_took:.2f}s; "
              f"quorum lost for {back - lost:.1f}s: list-units failed in {outage_cli:.2f}s; reconverged "
              f"{reconverged:.2f}s after the members restarted; 0 restarts, 0 moves")


@pytest.mark.lab
@pytest.mark.slow
def test_single_etcd_down_for_half_a_minute_stops_nothing_and_loses_nothing(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(**lab_kwargs())
    with fleet_on(lab) as fleet:
        fleet.start(UNITS)
        fleet.wait_placed(UNITS)
        fleet.registry.set_target_state("e5.service", JobState.LOADED)  # one unit loaded, not running
        wait_for("e5 stopped", lambda: "e5.service" not in fleet.placement())
        running = UNITS[:5]
        pids = fleet.pids(running)
        tree = fleet.job_tree()
        with Sampler(fleet, UNITS) as sampler:
            lab.etcd_stop("etcd1")
            down = time.monotonic()
            outage_cli = one_line_outage(lab)
            while time.monotonic() - down < 30.0:
                assert fleet.pids(running) == pids
                time.sleep(2.0)
            lab.etcd_start("etcd1")
            back = time.monotonic()
            reconverged = wait_for("reconverged", lambda: converged(fleet, running, ("e5.service",)), 60, 0.5)
            time.sleep(3.0)
        assert fleet.job_tree() == tree, "the job tree changed"
        assert fleet.pids(running) == pids
        assert sampler.restarts() == {} and sampler.duplicates() == {}
        assert fleet.where(["e5.service"])["e5.service"] == {}
        states = {s.name for s in fleet.registry.unit_states()}
        assert states == set(UNITS)  # e5 loaded and inactive: its state is published again too
        for node in lab.nodes:
            assert "task UnloadUnit" not in fleet.journal(node)
        print(f"\nRELIABILITY etcd-down: etcd down {back - down:.1f}s; list-units failed in {outage_cli:.2f}s; "
              f"reconverged {reconverged:.2f}s after etcd restarted; job tree identical; 0 restarts, 0 moves")


def test_machines_missing_after_etcd_trouble_are_held_while_agents_re_register() -> None:
    """etcd back after an outage: every TTL expired at once, the agents re-register one by one; the last one is a
    minority but its units stay (for ``hold`` seconds), where a lone loss in a healthy cluster moves at once."""
    damper = LossDamper(7.5, outage=2.0)
    damper.failed(8.0)  # the lease check failed: etcd unreachable
    damper.succeeded(10.0)  # back after 2 s: long enough to have expired a healthy agent (agent_ttl 4 s)
    damper.reset()  # and the term ended
    assert damper.observe(11.0, present={"a", "b"}, referenced={"a", "b", "c"}) == {"c"}
    assert damper.observe(18.0, present={"a", "b"}, referenced={"a", "b", "c"}) == {"c"}
    assert damper.observe(18.5, present={"a", "b"}, referenced={"a", "b", "c"}) == set()  # never came back
    healthy = LossDamper(7.5)
    assert healthy.observe(11.0, present={"a", "b"}, referenced={"a", "b", "c"}) == set()
    damper.observe(30.0, present={"a", "b", "c"}, referenced={"a", "b", "c"})
    assert damper.observe(40.0, present={"a", "b"}, referenced={"a", "b", "c"}) == set()  # long after: a lone loss
