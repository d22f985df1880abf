"""The lab's pure parts: naming, subnets, records, scripts, ssh/agent text, cgroup parsing, rendering."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from fleetpy.cli.lab import parse_metadata
from fleetpy.errors import LabError
from fleetpy.lab import agent, cgroups, net, scripts, ssh, state
from fleetpy.lab.lifecycle import check_metadata, keep_paths
from fleetpy.lab.state import EtcdMember, LabRecord, NodeRecord
from fleetpy.lab.status import LabStatus, MemberStatus, NodeStatus, render


@pytest.mark.parametrize("name", ["a", "fleetpy", "t1234567", "t12345678901", "My_Lab-with-a-long-name-01234567"])
def test_interface_names_fit_linux_limit(name: str) -> None:
    assert len(state.bridge_name(name)) <= 15
    assert len(state.veth_name(name, state.MAX_NODES)) <= 15


def test_tags_differ_for_similar_long_names() -> None:
    assert state.lab_tag("t123456781") != state.lab_tag("t123456782")
    assert state.lab_tag("fleetpy") == "fleetpy"


def test_netns_and_cgroup_names_carry_the_lab_name() -> None:
    assert state.netns_name("x1", 2) == "fp-x1-n2"
    assert state.cgroup_name("x1", "node2") == "fp-x1-node2"


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "x" * 33, "é"])
def test_bad_lab_names(name: str) -> None:
    with pytest.raises(LabError, match="invalid lab name"):
        state.check_name(name)


def test_lab_dir_resolution(tmp_path: Path) -> None:
    assert state.lab_dir("x", None, {}) == Path("/var/lib/fleetpy/lab/x")
    assert state.lab_dir("x", None, {"FLEETPY_LAB_DIR": str(tmp_path)}) == tmp_path / "x"
    assert state.lab_dir("x", tmp_path / "own", {"FLEETPY_LAB_DIR": "/elsewhere"}) == tmp_path / "own"
    for bad in ("/run/lab", "/proc/x", "/"):
        with pytest.raises(LabError):
            state.lab_dir("x", bad, {})


def test_pick_subnet_avoids_used_networks() -> None:
    first = net.pick_subnet("lab", [])
    assert first.prefixlen == 24 and first.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    used = [first, ipaddress.IPv4Network("10.0.0.0/9")]
    second = net.pick_subnet("lab", used)
    assert not any(second.overlaps(u) for u in used)
    assert net.pick_subnet("lab", []) == first  # deterministic per name


def test_pick_subnet_fails_when_everything_is_taken() -> None:
    with pytest.raises(LabError, match="no free"):
        net.pick_subnet("lab", [ipaddress.IPv4Network("10.0.0.0/8")])


@pytest.mark.parametrize("text", ["10.77.0.0/16", "8.8.8.0/24", "10.77.0.1/24", "nonsense"])
def test_parse_subnet_rejects(text: str) -> None:
    with pytest.raises(LabError):
        net.parse_subnet(text)


def test_addresses() -> None:
    subnet = net.parse_subnet("10.77.0.0/24")
    assert net.bridge_ip(subnet) == "10.77.0.1"
    assert net.node_ip(subnet, 3) == "10.77.0.13"


def _record() -> LabRecord:
    node = NodeRecord("node1", 1, "node1", "10.77.0.11", "ab" * 16, "fp-x-n1", "fpv-x-1", {"role": "db"})
    return LabRecord("x", "10.77.0.0/24", "fpb-x", "10.77.0.1", (node,), (EtcdMember("etcd1", 2379, 2380),),
                     ("/tmp/a",), agent_env={"FLEET_ETCD_KEY_PREFIX": "/p"})


def test_record_round_trip() -> None:
    record = _record()
    again = state.record_from_json(state.record_to_json(record))
    assert again == record
    assert again.endpoints == ["http://10.77.0.1:2379"]
    assert again.member("1").name == "etcd1"
    with pytest.raises(LabError, match="no node"):
        again.node("node7")
    with pytest.raises(LabError, match="no etcd member"):
        again.member("etcd4")


def test_agent_environment() -> None:
    record = _record()
    env = agent.agent_environment(record, record.nodes[0], {"FLEET_AGENT_TTL": "5s"})
    assert env["FLEET_ETCD_SERVERS"] == "http://10.77.0.1:2379"
    assert env["FLEET_METADATA"] == "hostname=node1,role=db"
    assert env["FLEET_PUBLIC_IP"] == "10.77.0.11"
    assert env["FLEET_AGENT_TTL"] == "5s"
    assert env["FLEET_ETCD_KEY_PREFIX"] == "/p"


def test_lab_agent_env_passes_on_the_host_pythonpath() -> None:
    assert agent.lab_agent_env(None, None, {}) == {}
    assert agent.lab_agent_env({"A": "1"}, "3s", {"PYTHONPATH": "/var/tmp/tree", "HOME": "/root"}) == {
        "A": "1", "FLEET_AGENT_TTL": "3s", "PYTHONPATH": "/var/tmp/tree"}
    mine = {"PYTHONPATH": "/mine"}
    assert agent.lab_agent_env(mine, None, {"PYTHONPATH": "/var/tmp/tree"}) == mine
    assert agent.lab_agent_env(None, None, {"PYTHONPATH": ""}) == {}


def test_node_init_script_order_and_masks() -> None:
    text = scripts.node_init_text("/usr/bin:/bin")
    mounts = [line.strip() for line in text.splitlines() if line.strip().startswith("mount ")]
    assert mounts[0] == "mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run"
    assert text.index("tmpfs /tmp") < text.index("exec env -i")
    for unit in ("systemd-tmpfiles-setup.service", "dev-hugepages.mount", "systemd-ask-password-console.path"):
        assert f" {unit}" in text
    assert all("." in unit for unit in scripts.MASKED_UNITS)  # a mask without its suffix masks nothing
    assert "--unit=basic.target" in text and "/dev/kmsg" in text and "remount,bind,ro /proc/sys" in text
    assert "Storage=volatile\\nReadKMsg=no" in text


def test_sshd_config_and_known_hosts() -> None:
    config = ssh.sshd_config_text(Path("/lab/ssh/authorized_keys"))
    assert "AuthorizedKeysFile /lab/ssh/authorized_keys" in config and "PasswordAuthentication no" in config
    assert ssh.known_hosts_line("10.77.0.11", "ssh-ed25519 AAAAkey node1@lab\n") == "10.77.0.11 ssh-ed25519 AAAAkey"


HYBRID_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
32 25 0:28 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
40 1 8:1 / / rw - ext4 /dev/vda rw
"""


def test_cgroup_dirs_on_a_hybrid_host() -> None:
    membership = cgroups.parse_proc_cgroup("9:name=systemd:/\n4:memory:/job/7\n2:cpu,cpuacct:/\n0::/\n")
    dirs = cgroups.hierarchy_dirs(cgroups.parse_mountinfo(HYBRID_MOUNTINFO), membership)
    assert dirs == [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/memory/job/7"),
                    Path("/sys/fs/cgroup/cpu,cpuacct"), Path("/sys/fs/cgroup/unified")]


def test_cgroup_dirs_on_a_pure_v2_host() -> None:
    mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    dirs = cgroups.hierarchy_dirs(cgroups.parse_mountinfo(mountinfo), [("", "/user.slice/s.scope")])
    assert dirs == [Path("/sys/fs/cgroup/user.slice/s.scope")]


def test_keep_paths_are_minimal(tmp_path: Path) -> None:
    kept = keep_paths(Path("/tmp/x/lab"))
    assert "/tmp/x/lab" in kept
    assert all(not a.startswith(b + "/") for a in kept for b in kept if a != b)
    assert all(p.startswith(("/tmp/", "/root/")) for p in kept)


def test_check_metadata() -> None:
    check_metadata({"node1": {"role": "db"}}, ["node1", "node2"])
    with pytest.raises(LabError, match="unknown node"):
        check_metadata({"node3": {"role": "db"}}, ["node1"])
    with pytest.raises(LabError, match="bad metadata"):
        check_metadata({"node1": {"a": "b,c"}}, ["node1"])


def test_cli_metadata_parsing() -> None:
    assert parse_metadata(("node1:role=db,disk=ssd", "node2:role=web")) == {
        "node1": {"role": "db", "disk": "ssd"}, "node2": {"role": "web"}}


def test_render_status() -> None:
    status = LabStatus("x", "/d", "10.77.0.0/24", "fpb-x", "10.77.0.1",
                       (NodeStatus("node1", "node1", "10.77.0.11", "ab", "running", False, "active"),
                        NodeStatus("node2", "node2", "10.77.0.12", "cd", "off", True, "-")),
                       (MemberStatus("etcd1", "http://10.77.0.1:2379", "healthy", 42),))
    text = render(status)
    rows = [line.split() for line in text.splitlines()]
    assert ["node2", "node2", "10.77.0.12", "cd", "off", "cut", "-"] in rows
    assert ["etcd1", "http://10.77.0.1:2379", "healthy", "42"] in rows
    header = next(line for line in text.splitlines() if line.startswith("NODE"))
    assert header.index("SYSTEM") == next(line for line in text.splitlines() if line.startswith("node2")).index("off")
