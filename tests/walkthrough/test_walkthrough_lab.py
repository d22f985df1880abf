"""The walkthrough on a real 3-node lab, through the ``fleetpy`` CLI as a user runs it.

``fleetpy start units/demo-mongo.service units/demo-employees.service units/demo-mongo-discovery.service``:
the three land on one machine, systemd there starts the database first, and the sidekick announces
``<node ip>:27017`` in etcd. Powering that node off moves all three, together, to another node, where they start
in the same order and the announcement follows. What systemd runs is read inside the nodes; what the user sees is
read from ``fleetpy list-units``.

The other Docker-free examples in units/ run there too, each showing its scheduling rule, and print what their
shell loops are meant to print (systemd's quoting and ``$$``/``%`` escapes checked by a real systemd).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from fleetpy.lab import Lab
from tests.walkthrough.tools import REPO, UNITS

pytestmark = pytest.mark.lab

FLEETPY = Path(sys.executable).parent / "fleetpy"
MONGO, EMPLOYEES, DISCOVERY = "demo-mongo.service", "demo-employees.service", "demo-mongo-discovery.service"
STARTED = (MONGO, EMPLOYEES, DISCOVERY)
AGENT_TTL = "5s"
MOVE_TIMEOUT = 120.0
T = TypeVar("T")


def fleetpy(lab: Lab, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FLEETPY), *args], env={**os.environ, **lab.env()}, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def diagnostics(lab: Lab) -> str:
    parts = []
    for args in (("list-machines",), ("list-unit-files",), ("list-units",)):
        proc = fleetpy(lab, *args)
        parts.append(f"$ fleetpy {' '.join(args)} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
    for node in running_nodes(lab):
        proc = lab.exec(node, ["systemctl", "list-units", "--all", "--no-legend", "demo-*", "fleetpyd.service"])
        parts.append(f"[{node}] systemctl list-units\n{proc.stdout}{proc.stderr}")
        proc = lab.exec(node, ["journalctl", "--no-pager", "-n", "15", "-u", "fleetpyd.service", "-u", "demo-*"])
        parts.append(f"[{node}] journal\n{proc.stdout}{proc.stderr}")
    return "\n".join(parts)


def eventually(lab: Lab, what: str, probe: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{diagnostics(lab)}", pytrace=False)
        time.sleep(0.5)


def running_nodes(lab: Lab) -> list[str]:
    return [n for n in lab.nodes if lab.node_pid(n) is not None]


def show(lab: Lab, node: str, unit: str) -> dict[str, str]:
    props = "ActiveState,SubState,ActiveEnterTimestampMonotonic,ExecMainStartTimestampMonotonic"
    proc = lab.exec(node, ["systemctl", "show", "-p", props, unit], timeout=20)
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def placement(lab: Lab) -> str | None:
    """The one node where all three units are active, provided no other node has any of them active."""
    hosts = {n: {u for u in STARTED if show(lab, n, u).get("ActiveState") == "active"} for n in running_nodes(lab)}
    full = [n for n, units in hosts.items() if units == set(STARTED)]
    partial = [n for n, units in hosts.items() if units and n not in full]
    return full[0] if len(full) == 1 and not partial else None


def assert_started_in_order(lab: Lab, node: str) -> None:
    mongo, employees, discovery = (show(lab, node, u) for u in STARTED)
    mongo_up = int(mongo["ActiveEnterTimestampMonotonic"])
    assert mongo_up > 0
    assert int(employees["ExecMainStartTimestampMonotonic"]) >= mongo_up, (mongo, employees)
    assert int(discovery["ActiveEnterTimestampMonotonic"]) >= mongo_up, (mongo, discovery)


def announced(lab: Lab, node: str) -> str | None:
    url = f"{lab.etcd_endpoints[0]}/v2/keys/services/demo-mongo/{lab.hostname(node)}"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            value: str = json.load(resp)["node"]["value"]
            return value
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def listed_on(lab: Lab, node: str) -> bool | None:
    """``fleetpy list-units`` puts all three on ``node``'s machine, active."""
    proc = fleetpy(lab, "list-units", "--no-legend", "--full", "--fields", "unit,machine,active")
    if proc.returncode != 0:
        return None
    rows = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3:
            rows[fields[0]] = (fields[1].split("/")[0], fields[2])
    machine = lab.machine_id(node)
    return True if all(rows.get(u) == (machine, "active") for u in STARTED) else None


def check_placed(lab: Lab, node: str) -> None:
    assert_started_in_order(lab, node)
    value = eventually(lab, f"the announcement for {node}", lambda: announced(lab, node), 15)
    assert value == f"{lab.node_ip(node)}:27017"
    eventually(lab, f"list-units to show the pair on {node}", lambda: listed_on(lab, node), 30)


def test_stand_ins_land_together_start_in_order_and_move_together(lab_factory: Callable[..., Lab]) -> None:
    assert FLEETPY.exists(), f"{FLEETPY} missing: pip install -e . in this venv"
    lab = lab_factory(nodes=3, metadata={"node1": {"role": "db"}}, agent_ttl=AGENT_TTL)
    for node in lab.nodes:  # where the discovery sidekick finds etcd (docs/walkthrough.md)
        lab.exec(node, ["systemctl", "set-environment", f"FLEET_ETCD_SERVERS={','.join(lab.etcd_endpoints)}",
                        f"FLEET_PUBLIC_IP={lab.node_ip(node)}"], check=True)
    eventually(lab, "3 machines in list-machines",
               lambda: True if len(fleetpy(lab, "list-machines", "--no-legend").stdout.splitlines()) == 3 else None,
               60)

    proc = fleetpy(lab, "start", *(str(UNITS / u) for u in STARTED), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    first = eventually(lab, "the three units active together on one node", lambda: placement(lab), 60)
    check_placed(lab, first)

    lab.poweroff(first)
    second = eventually(lab, f"the three units to move off {first}", lambda: placement(lab), MOVE_TIMEOUT)
    assert second != first
    check_placed(lab, second)


EXAMPLES = ("hello.service", "global-monitor.service", "db-only.service", "app.service", "app-sidekick.service")
WEB = ("web@1.service", "web@2.service", "web@3.service")


def active_nodes(lab: Lab, unit: str) -> set[str]:
    return {n for n in running_nodes(lab) if show(lab, n, unit).get("ActiveState") == "active"}


def journal(lab: Lab, node: str, unit: str) -> str:
    return lab.exec(node, ["journalctl", "--no-pager", "-o", "cat", "-u", unit], timeout=20).stdout


def test_docker_free_examples_follow_their_rules(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(nodes=3, metadata={"node1": {"role": "db"}}, agent_ttl=AGENT_TTL)
    eventually(lab, "3 machines in list-machines",
               lambda: True if len(fleetpy(lab, "list-machines", "--no-legend").stdout.splitlines()) == 3 else None,
               60)
    proc = fleetpy(lab, "submit", str(UNITS / "web@.service"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = fleetpy(lab, "start", *(str(UNITS / u) for u in EXAMPLES), *WEB, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def settled() -> dict[str, set[str]] | None:
        where = {u: active_nodes(lab, u) for u in (*EXAMPLES, *WEB)}
        single = [u for u in (*EXAMPLES, *WEB) if u != "global-monitor.service"]
        done = len(where["global-monitor.service"]) == 3 and all(len(where[u]) == 1 for u in single)
        return where if done else None

    where = eventually(lab, "every example active", settled, 60)
    assert where["db-only.service"] == {"node1"}, "MachineMetadata=role=db"
    assert where["app-sidekick.service"] == where["app.service"], "MachineOf=app.service"
    assert set().union(*(where[u] for u in WEB)) == set(lab.nodes), "Conflicts=web@*.service: one per machine"

    (hello_node,) = where["hello.service"]
    eventually(lab, "hello's output", lambda: True if "Hello, World!" in journal(lab, hello_node, "hello.service")
               else None, 15)
    monitor = eventually(lab, "the monitor's output", lambda: journal(lab, "node2", "global-monitor.service") or None,
                         15)
    pattern = rf"^monitor on {re.escape(lab.hostname('node2'))}: load [0-9.]+ [0-9.]+ [0-9.]+$"
    assert re.search(pattern, monitor, re.M), monitor
    (web2_node,) = where["web@2.service"]
    web = eventually(lab, "web@2's output", lambda: journal(lab, web2_node, "web@2.service") or None, 15)
    assert f"web 2: serving on {lab.hostname(web2_node)}" in web
