"""``up``/``down`` leave the host as they found it, also after a failed ``up``; agents, 3 etcd members, 2 labs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetpy.errors import LabError
from fleetpy.lab import Lab, state
from fleetpy.lab.host import Proc
from fleetpy.lab.node import Node

pytestmark = pytest.mark.lab

SENTINEL = Path("/tmp") / f"fleetpy-lab-sentinel-{os.getpid()}"  # a host /tmp file a node must never touch


def _netns() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _tree(root: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, dirs, files in os.walk(root) for f in dirs + files)


def _tmp_listing() -> set[str]:
    """/tmp entries untouched for 2 minutes: other test runs on this machine come and go in /tmp meanwhile, so
    only the settled part of the listing (plus our SENTINEL) is compared before and after."""
    now, names = time.time(), set()
    for name in os.listdir("/tmp"):
        try:
            if os.lstat(os.path.join("/tmp", name)).st_mtime < now - 120 or name == SENTINEL.name:
                names.add(name)
        except FileNotFoundError:
            pass
    return names


def _snapshot(name: str) -> dict[str, object]:
    """The host state a lab named ``name`` could change (other labs on the machine may come and go)."""
    ours = (state.bridge_name(name), f"fpv-{state.lab_tag(name)}-", f"fp-{name}-")
    return {
        "netns": {n for n in _netns() if n.startswith(ours)}, "links": {n for n in _links() if n.startswith(ours)},
        "etc": _tree("/etc/systemd/system"), "run_mount": os.path.exists("/run/mount"),
        "journal": _tree("/var/log/journal"),
    }


def _lab_processes(lab: Lab) -> tuple[list[Proc], list[Path]]:
    procs, dirs = [], []
    for name in lab.nodes:
        node = Node(lab.name, lab.paths, lab.record.node(name))
        procs += [p for p in (Proc.load(node.dir / "pid"), Proc.load(node.dir / "init")) if p]
        dirs += node.cgroup_dirs()
    for member in lab.record.etcd:
        proc = Proc.load(lab.paths.etcd(member.name) / "pid")
        procs += [proc] if proc else []
    return procs, dirs


def _assert_gone(lab: Lab, before: dict[str, object], tmp_before: set[str], procs: list[Proc],
                 dirs: list[Path]) -> None:
    assert not lab.dir.exists()
    assert {**_snapshot(lab.name), "run_netns": before["run_netns"]} == before
    assert os.path.isdir("/run/netns") == (before["run_netns"] or bool(_netns()))  # no empty /run/netns left
    assert not any(n.startswith(f"fp-{lab.name}-") for n in _netns())
    assert not [d for d in dirs if d.exists()]
    assert not [p for p in procs if p.alive()]
    tmp_after = set(os.listdir("/tmp"))
    assert tmp_before <= tmp_after, f"removed from /tmp: {tmp_before - tmp_after}"
    assert not [n for n in tmp_after - tmp_before if n.startswith("systemd-private-") or lab.name in n]
    assert SENTINEL.read_text() == "keep"


@pytest.fixture
def sentinel() -> object:
    SENTINEL.write_text("keep")
    yield
    SENTINEL.unlink()


def test_down_leaves_nothing_behind(tmp_path: Path, sentinel: object) -> None:
    lab = Lab(f"d{os.getpid()}", tmp_path / "lab")
    before, tmp_before = {**_snapshot(lab.name), "run_netns": os.path.isdir("/run/netns")}, _tmp_listing()
    try:
        lab.up(nodes=2, agents=False)
        procs, dirs = _lab_processes(lab)
        assert len(procs) == 5 and all(p.alive() for p in procs) and all(d.exists() for d in dirs)
        assert lab.exec("node1", ["systemctl", "is-system-running"]).stdout.strip() == "running"
        lab.poweroff("node2")  # a node already off is fine for down
    finally:
        assert lab.down() is True
    _assert_gone(lab, before, tmp_before, procs, dirs)
    assert lab.down() is False  # twice is harmless


@pytest.mark.parametrize("fail_at", ["bridge", "etcd", "node1"])
def test_failed_up_removes_what_it_made(tmp_path: Path, sentinel: object, fail_at: str) -> None:
    lab = Lab(f"f{os.getpid()}", tmp_path / "lab")
    before, tmp_before = {**_snapshot(lab.name), "run_netns": os.path.isdir("/run/netns")}, _tmp_listing()
    seen: list[tuple[list[Proc], list[Path]]] = []

    def progress(message: str) -> None:
        if message.startswith(fail_at):
            if lab.is_up and lab.record.etcd:
                seen.append(_lab_processes(lab))
            raise RuntimeError(f"injected failure at {fail_at}")

    with pytest.raises(RuntimeError, match="injected"):
        lab.up(nodes=2, agents=False, progress=progress)
    procs, dirs = seen[0] if seen else ([], [])
    assert fail_at != "node1" or len(procs) >= 4  # launchers, node1 PID 1 (node2 maybe) and etcd were running
    _assert_gone(lab, before, tmp_before, procs, dirs)


def test_agents_get_their_environment(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(nodes=1, agents=True, metadata={"node1": {"role": "db", "disk": "ssd"}},
                      agent_env={"FLEET_ETCD_KEY_PREFIX": "/lab-test"}, agent_ttl="5s")
    show = lab.exec("node1", ["systemctl", "show", "-p", "Environment", "-p", "ExecStart", "fleetpyd.service"],
                    check=True).stdout
    for expected in (f"FLEET_ETCD_SERVERS={lab.etcd_endpoints[0]}", "FLEET_METADATA=hostname=node1,disk=ssd,role=db",
                     f"FLEET_PUBLIC_IP={lab.node_ip('node1')}", "FLEET_AGENT_TTL=5s",
                     "FLEET_ETCD_KEY_PREFIX=/lab-test", os.path.join(sys.prefix, "bin", "fleetpyd")):
        assert expected in show
    # the helpers the agent tests will use (fleetpyd is still a stub that exits at once)
    lab.start_agent("node1", env={"FLEET_AGENT_TTL": "9s"})
    assert "FLEET_AGENT_TTL=9s" in lab.exec("node1", ["systemctl", "show", "-p", "Environment",
                                                      "fleetpyd.service"]).stdout
    lab.stop_agent("node1", "SIGKILL")
    lab.stop_agent("node1")
    assert lab.agent_pid("node1") is None


def test_three_etcd_members_survive_one_stop(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(nodes=1, etcd_members=3, agents=False)
    assert len(lab.etcd_endpoints) == 3
    assert [m.state for m in lab.status().etcd] == ["healthy"] * 3
    lab.etcd_stop("etcd1")
    put = ("import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/v2/keys/k', "
           "data=b'value=v', method='PUT'), timeout=10)")
    lab.exec("node1", ["python3", "-c", put, lab.etcd_endpoints[1]], check=True)
    assert [m.state for m in lab.status().etcd] == ["stopped", "healthy", "healthy"]
    lab.etcd_start("1")
    assert [m.state for m in lab.status().etcd] == ["healthy"] * 3


def test_two_labs_coexist(lab_factory: Callable[..., Lab]) -> None:
    one, two = lab_factory(nodes=1, agents=False), lab_factory(nodes=1, agents=False)
    assert one.record.subnet != two.record.subnet and one.record.bridge != two.record.bridge
    for lab in (one, two):
        assert lab.exec("node1", ["systemctl", "is-system-running"]).stdout.strip() == "running"
    # no route between labs: node1 of one cannot reach the other lab's etcd
    other = two.etcd_endpoints[0].removeprefix("http://")
    probe = "import socket, sys; h, p = sys.argv[1].split(':'); socket.create_connection((h, int(p)), timeout=1)"
    assert one.exec("node1", ["python3", "-c", probe, other]).returncode != 0
    one.down()
    assert two.exec("node1", ["hostname"]).stdout.strip() == "node1"
    with pytest.raises(LabError, match="no lab named"):
        one.status()
