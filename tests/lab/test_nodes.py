"""A 3-node lab behaves like 3 machines: own systemd, identity, network, sshd; runtime units stay local.

Fault tests (cut/heal, poweroff/start, kill/start, etcd stop/start) restore the node or member they touch,
because ``lab3`` is shared by the module.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import paramiko
import pytest

import fleetpy
from fleetpy.errors import LabError
from fleetpy.lab import Lab
from fleetpy.lab.host import wait_for

pytestmark = pytest.mark.lab

PROBE = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as err:
    print(err); sys.exit(1)
"""


def reach(lab: Lab, node: str, ip: str, port: int, timeout: float = 2.0) -> bool:
    """TCP connect from inside ``node`` to ip:port."""
    return lab.exec(node, ["python3", "-c", PROBE, ip, str(port), str(timeout)]).returncode == 0


def etcd_port(lab: Lab) -> int:
    return int(lab.etcd_endpoints[0].rsplit(":", 1)[1])


def ssh_client(lab: Lab, node: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(lab.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(lab.node_ip(node), username="root", key_filename=str(lab.ssh_key_path), timeout=5,
                   allow_agent=False, look_for_keys=False)
    return client


def ssh_run(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    _stdin, stdout, _stderr = client.exec_command(command, timeout=10)
    out = stdout.read().decode()
    return stdout.channel.recv_exit_status(), out


def test_each_node_runs_systemd_with_its_own_identity(lab3: Lab) -> None:
    host_machine_id = Path("/etc/machine-id").read_text().strip()
    seen = set()
    for node in lab3.nodes:
        state = lab3.exec(node, ["systemctl", "is-system-running"]).stdout.strip()
        assert state in ("running", "degraded"), (node, state)
        failed = lab3.exec(node, ["systemctl", "--failed", "--no-legend", "--plain"]).stdout.strip()
        assert failed == "", (node, failed)
        assert lab3.exec(node, ["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
        machine_id = lab3.exec(node, ["cat", "/etc/machine-id"], check=True).stdout.strip()
        assert machine_id == lab3.machine_id(node) != host_machine_id
        assert lab3.exec(node, ["hostname"], check=True).stdout.strip() == node == lab3.hostname(node)
        seen.add(machine_id)
    assert len(seen) == 3


def test_nodes_have_private_run_and_tmp_and_see_the_checkout(lab3: Lab) -> None:
    checkout = Path(fleetpy.__file__).resolve().parents[1]
    fleetpyd = os.path.join(sys.prefix, "bin", "fleetpyd")
    for node in lab3.nodes:
        fstypes = lab3.exec(node, ["findmnt", "-n", "-o", "FSTYPE", "--target", "/tmp"]).stdout.split()
        assert fstypes[-1:] == ["tmpfs"]
        assert lab3.exec(node, ["findmnt", "-n", "-o", "FSTYPE", "/run"]).stdout.strip() == "tmpfs"
        assert lab3.exec(node, ["test", "-f", str(checkout / "fleetpy" / "lab" / "lab.py")]).returncode == 0
        assert lab3.exec(node, ["test", "-x", fleetpyd]).returncode == 0
        assert lab3.exec(node, ["test", "-f", str(lab3.dir / "lab.json")]).returncode == 0
        assert lab3.exec(node, ["sh", "-c", "echo x > /proc/sys/kernel/hostname"]).returncode != 0
        assert "default" not in lab3.exec(node, ["ip", "route"]).stdout


def test_nodes_have_a_private_root_home_and_still_run_the_venv(lab3: Lab) -> None:
    marker = f".fleetpy-lab-marker-{os.getpid()}"
    first, second = lab3.nodes[0], lab3.nodes[1]
    try:
        assert lab3.exec(first, ["sh", "-c", f"touch /root/{marker}"]).returncode == 0
        assert lab3.exec(first, ["test", "-f", f"/root/{marker}"]).returncode == 0
        assert not os.path.exists(f"/root/{marker}")  # the host's /root is not the node's
        assert lab3.exec(second, ["test", "-e", f"/root/{marker}"]).returncode != 0
        # the venv's Python (whose base may live under the host's /root, e.g. pyenv) still runs in the node
        assert lab3.exec(first, [sys.executable, "-c", "import fleetpy"]).returncode == 0
    finally:
        lab3.exec(first, ["rm", "-f", f"/root/{marker}"])


def test_nodes_reach_etcd_and_each_other(lab3: Lab) -> None:
    fetch = "import json, urllib.request, sys; print(urllib.request.urlopen(sys.argv[1] + '/version').read().decode())"
    for node in lab3.nodes:
        out = lab3.exec(node, ["python3", "-c", fetch, lab3.etcd_endpoints[0]], check=True).stdout
        assert "etcdserver" in json.loads(out)
        for other in lab3.nodes:
            if other != node:
                assert reach(lab3, node, lab3.node_ip(other), 22)


def test_paramiko_reaches_every_sshd_with_strict_host_keys(lab3: Lab) -> None:
    for node in lab3.nodes:
        client = ssh_client(lab3, node)
        try:
            assert ssh_run(client, "hostname") == (0, f"{node}\n")
            assert ssh_run(client, "systemctl status missing.service")[0] == 4
        finally:
            client.close()
    lines = lab3.known_hosts_path.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [[lab3.node_ip(n), "ssh-ed25519"] for n in lab3.nodes]


def test_host_key_is_checked(lab3: Lab, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    wrong.write_text(lab3.known_hosts_path.read_text().replace(lab3.node_ip("node1"), "10.255.255.254"))
    client = paramiko.SSHClient()
    client.load_host_keys(str(wrong))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException):
        client.connect(lab3.node_ip("node1"), username="root", key_filename=str(lab3.ssh_key_path), timeout=5,
                       allow_agent=False, look_for_keys=False)
    client.close()


def test_runtime_unit_runs_in_node1_only(lab3: Lab) -> None:
    host_units = sorted(os.listdir("/etc/systemd/system"))
    unit = f"fptest-{os.getpid()}.service"
    path = lab3.dir / unit
    path.write_text("[Service]\nExecStart=/bin/sleep 300\n")
    lab3.exec("node1", ["systemctl", "link", "--runtime", str(path)], check=True)
    lab3.exec("node1", ["systemctl", "start", unit], check=True)
    try:
        assert lab3.exec("node1", ["systemctl", "is-active", unit]).stdout.strip() == "active"
        assert lab3.exec("node1", ["systemctl", "is-enabled", unit]).stdout.strip() == "linked-runtime"
        show = lab3.exec("node1", ["systemctl", "show", "-p", "FragmentPath", "-p", "ControlGroup", unit]).stdout
        assert f"FragmentPath=/run/systemd/system/{unit}" in show
        assert f"ControlGroup=/system.slice/{unit}" in show
        for other in ("node2", "node3"):
            load = lab3.exec(other, ["systemctl", "show", "-p", "LoadState", "--value", unit]).stdout.strip()
            assert load == "not-found"
        assert sorted(os.listdir("/etc/systemd/system")) == host_units
        assert not os.path.exists(f"/run/systemd/system/{unit}")
    finally:
        lab3.exec("node1", ["systemctl", "stop", unit])
        lab3.exec("node1", ["systemctl", "disable", "--runtime", unit])


def test_cut_and_heal(lab3: Lab) -> None:
    ip3 = lab3.node_ip("node3")
    lab3.cut("node3")
    try:
        assert lab3.status().nodes[2].cut
        assert not reach(lab3, "node1", ip3, 22, timeout=1)
        assert not reach(lab3, "node3", lab3.bridge_ip, etcd_port(lab3), timeout=1)
        assert reach(lab3, "node1", lab3.node_ip("node2"), 22)
    finally:
        lab3.heal("node3")
    assert not lab3.status().nodes[2].cut
    assert wait_for(lambda: reach(lab3, "node1", ip3, 22, timeout=1), 10)
    assert reach(lab3, "node3", lab3.bridge_ip, etcd_port(lab3))


@pytest.mark.parametrize("fault", ["poweroff", "kill"])
def test_fault_then_start_keeps_identity(lab3: Lab, fault: str) -> None:
    node = "node2"
    before = (lab3.machine_id(node), lab3.node_ip(node), lab3.exec(node, ["hostname"]).stdout)
    getattr(lab3, fault)(node)
    assert lab3.status().nodes[1].state == "off"
    assert lab3.node_pid(node) is None
    with pytest.raises(LabError, match="not running"):
        lab3.exec(node, ["true"])
    assert not _port_open(lab3.node_ip(node))
    with pytest.raises(LabError, match="already off"):
        getattr(lab3, fault)(node)
    lab3.start(node)
    assert lab3.exec(node, ["cat", "/etc/machine-id"]).stdout.strip() == before[0]
    assert (lab3.machine_id(node), lab3.node_ip(node), lab3.exec(node, ["hostname"]).stdout) == before
    client = ssh_client(lab3, node)  # RejectPolicy: the host key is the same one
    try:
        assert ssh_run(client, "hostname") == (0, f"{node}\n")
    finally:
        client.close()
    with pytest.raises(LabError, match="already running"):
        lab3.start(node)


def _port_open(ip: str) -> bool:
    try:
        socket.create_connection((ip, 22), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_etcd_stop_and_start_keeps_data(lab3: Lab) -> None:
    put = ("import sys, urllib.request; r = urllib.request.Request(sys.argv[1] + '/v2/keys/fptest', "
           "data=b'value=kept', method='PUT'); urllib.request.urlopen(r, timeout=3)")
    get = ("import sys, json, urllib.request; "
           "print(json.load(urllib.request.urlopen(sys.argv[1] + '/v2/keys/fptest', timeout=3))['node']['value'])")
    endpoint = lab3.etcd_endpoints[0]
    lab3.exec("node1", ["python3", "-c", put, endpoint], check=True)
    lab3.etcd_stop("etcd1")
    try:
        assert lab3.status().etcd[0].state == "stopped"
        assert lab3.exec("node1", ["python3", "-c", get, endpoint]).returncode != 0
    finally:
        lab3.etcd_start("etcd1")
    assert lab3.status().etcd[0].state == "healthy"
    assert lab3.exec("node2", ["python3", "-c", get, endpoint], check=True).stdout.strip() == "kept"


def test_exec_check_and_exit_codes(lab3: Lab) -> None:
    assert lab3.exec("node1", ["sh", "-c", "exit 3"]).returncode == 3
    with pytest.raises(LabError, match="exited 3"):
        lab3.exec("node1", ["sh", "-c", "echo boom >&2; exit 3"], check=True)
    assert lab3.exec("node1", ["cat"], input="hello").stdout == "hello"
    assert lab3.exec("node1", ["sh", "-c", "echo $FOO"], env={"FOO": "bar"}).stdout == "bar\n"
    with pytest.raises(LabError, match="no node"):
        lab3.exec("node9", ["true"])
