"""vagrant/: the Vagrantfile (ruby -c, vagrant validate, and what it configures, read through a recording stub of
Vagrant's config API) and provision.sh (syntax, shellcheck, argument checks, the etcd/fleetpyd config it writes,
and that config bringing up a real 3-member etcd cluster on loopback addresses)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetpy.testing import etcd_binary
from tests.walkthrough.tools import VAGRANT_DIR, require

VAGRANTFILE = VAGRANT_DIR / "Vagrantfile"
PROVISION = VAGRANT_DIR / "provision.sh"

# Loads a Vagrantfile with Vagrant.configure replaced by a recorder: every call on the config objects is written
# out as {"path", "call", "args", "kw"}; a block's calls get the call (and its first argument) appended to the path.
RECORDER = r"""
require "json"
$records = []
class Recorder
  def initialize(path) = @path = path
  def respond_to_missing?(*) = true
  def method_missing(name, *args, **kw, &blk)
    $records << {"path" => @path.join("."), "call" => name.to_s, "args" => args, "kw" => kw}
    child = Recorder.new(@path + [name.to_s] + (blk && !args.empty? ? [args.first.to_s] : []))
    blk&.call(child)
    child
  end
end
module Vagrant
  def self.configure(_version) = yield(Recorder.new([]))
end
load ARGV[0]
puts JSON.generate($records)
"""


def record(tmp_path: Path, **env: str) -> list[dict[str, Any]]:
    ruby = require("ruby", "ruby")
    stub = tmp_path / "recorder.rb"
    stub.write_text(RECORDER)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPY_")} | env
    proc = subprocess.run([ruby, str(stub), str(VAGRANTFILE)], capture_output=True, text=True, timeout=60,
                          env=full_env, cwd=VAGRANT_DIR)
    assert proc.returncode == 0, proc.stderr
    records: list[dict[str, Any]] = json.loads(proc.stdout)
    return records


def calls(records: list[dict[str, Any]], path: str, call: str) -> list[dict[str, Any]]:
    return [r for r in records if r["path"] == path and r["call"] == call]


def test_ruby_syntax() -> None:
    ruby = require("ruby", "ruby")
    proc = subprocess.run([ruby, "-c", str(VAGRANTFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Syntax OK" in proc.stdout, proc.stderr


def test_three_debian_machines_by_default(tmp_path: Path) -> None:
    records = record(tmp_path)
    assert calls(records, "vm", "box=")[0]["args"] == ["debian/bookworm64"]
    machines = [r["args"][0] for r in calls(records, "vm", "define")]
    assert machines == ["n1", "n2", "n3"]
    ips = [f"172.17.8.{100 + i}" for i in (1, 2, 3)]
    for i, name in enumerate(machines, start=1):
        path = f"vm.define.{name}.vm"
        assert calls(records, path, "hostname=")[0]["args"] == [name]
        (net,) = calls(records, path, "network")
        assert net["args"] == ["private_network"] and net["kw"] == {"ip": ips[i - 1]}
        (prov,) = calls(records, path, "provision")
        assert prov["args"] == ["shell"]
        assert prov["kw"] == {"path": "provision.sh", "args": [str(i), "3", *ips], "env": {}}
    providers = [r["args"][0] for r in calls(records, "vm", "provider")]
    assert providers == ["libvirt", "virtualbox"]


def test_repository_root_is_synced_to_vagrant(tmp_path: Path) -> None:
    folders = calls(record(tmp_path), "vm", "synced_folder")
    assert folders[0]["args"] == [".", "/vagrant"] and folders[0]["kw"] == {"disabled": True}
    assert folders[1]["args"] == ["..", "/vagrant"] and folders[1]["kw"]["type"] == "rsync"
    assert ".git/" in folders[1]["kw"]["rsync__exclude"] and ".venv/" in folders[1]["kw"]["rsync__exclude"]


def test_node_count_and_metadata_from_the_environment(tmp_path: Path) -> None:
    records = record(tmp_path, FLEETPY_NODES="5", FLEETPY_METADATA_N2="role=db,disk=ssd")
    assert [r["args"][0] for r in calls(records, "vm", "define")] == ["n1", "n2", "n3", "n4", "n5"]
    (prov,) = calls(records, "vm.define.n2.vm", "provision")
    assert prov["kw"]["args"] == ["2", "5", *(f"172.17.8.{100 + i}" for i in range(1, 6))]
    assert prov["kw"]["env"] == {"FLEETPY_METADATA": "role=db,disk=ssd"}
    (prov1,) = calls(records, "vm.define.n1.vm", "provision")
    assert prov1["kw"]["env"] == {}


@pytest.mark.parametrize("nodes", ["0", "51", "three"])
def test_bad_node_count_is_refused(tmp_path: Path, nodes: str) -> None:
    ruby = require("ruby", "ruby")
    stub = tmp_path / "recorder.rb"
    stub.write_text(RECORDER)
    proc = subprocess.run([ruby, str(stub), str(VAGRANTFILE)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FLEETPY_NODES": nodes})
    assert proc.returncode != 0
    assert "FLEETPY_NODES" in proc.stderr or "invalid value for Integer" in proc.stderr


@pytest.fixture
def vagrant_copy(tmp_path: Path) -> Iterator[Path]:
    """A copy of vagrant/ inside a stand-in repository root: `vagrant validate` leaves .vagrant/ beside the
    Vagrantfile, so it runs on the copy and the repository stays clean."""
    root = tmp_path / "repo"
    shutil.copytree(VAGRANT_DIR, root / "vagrant", ignore=shutil.ignore_patterns(".vagrant"))
    yield root / "vagrant"
    shutil.rmtree(root / "vagrant" / ".vagrant", ignore_errors=True)


@pytest.mark.parametrize("nodes", ["3", "1"])
def test_vagrant_validate(vagrant_copy: Path, tmp_path: Path, nodes: str) -> None:
    vagrant = require("vagrant", "vagrant")
    home = tmp_path / "vagrant.d"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAGRANT_", "FLEETPY_"))}
    env |= {"VAGRANT_HOME": str(home), "VAGRANT_CHECKPOINT_DISABLE": "1", "FLEETPY_NODES": nodes}
    repo_state_before = (VAGRANT_DIR / ".vagrant").exists()
    proc = subprocess.run([vagrant, "validate", "--ignore-provider"], cwd=vagrant_copy, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Vagrantfile validated successfully" in proc.stdout
    assert proc.stdout.count("Ignoring provider config") == int(nodes)
    shutil.rmtree(vagrant_copy / ".vagrant", ignore_errors=True)
    assert (VAGRANT_DIR / ".vagrant").exists() == repo_state_before, "validate must not touch the repository"


def test_provision_script_syntax_and_shellcheck() -> None:
    assert os.access(PROVISION, os.X_OK)
    proc = subprocess.run(["bash", "-n", str(PROVISION)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    shellcheck = require("shellcheck", "shellcheck")
    proc = subprocess.run([shellcheck, str(PROVISION)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def provision(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """provision.sh with FLEETPY_SRC pointing nowhere, so a real run would refuse before touching the machine."""
    base = {"PATH": "/usr/bin:/bin", "FLEETPY_SRC": "/nonexistent/fleetpy"}
    return subprocess.run(["bash", str(PROVISION), *args], capture_output=True, text=True, timeout=60,
                          env=base | env)


@pytest.mark.parametrize("args", [(), ("1", "3"), ("0", "1", "10.0.0.1"), ("4", "3", "a", "b", "c"),
                                  ("1", "3", "172.17.8.101", "172.17.8.102"), ("1", "1", "172.17.8"),
                                  ("x", "1", "172.17.8.101"), ("--print-config", "1", "2", "172.17.8.101")])
def test_provision_refuses_bad_arguments(args: tuple[str, ...]) -> None:
    proc = provision(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""


def test_provision_refuses_without_the_repository() -> None:
    proc = provision("1", "1", "172.17.8.101")
    assert proc.returncode == 1
    assert "does not hold the fleetpy repository" in proc.stderr


def parse_config(text: str) -> dict[str, dict[str, str]]:
    files: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# /"):
            current = files.setdefault(line[2:], {})
        elif line and not line.startswith("#"):
            key, _, value = line.partition("=")
            current[key] = value
    return files


IPS3 = ["172.17.8.101", "172.17.8.102", "172.17.8.103"]


def test_provision_config_for_a_three_member_cluster() -> None:
    configs = [parse_config(provision("--print-config", str(i), "3", *IPS3).stdout) for i in (1, 2, 3)]
    for i, cfg in enumerate(configs, start=1):
        etcd, fleet = cfg["/etc/default/etcd"], cfg["/etc/fleet/fleet.conf"]
        ip = IPS3[i - 1]
        assert etcd["ETCD_NAME"] == f"n{i}"
        assert etcd["ETCD_INITIAL_CLUSTER"] == ",".join(f"n{j}=http://{a}:2380" for j, a in enumerate(IPS3, 1))
        assert etcd["ETCD_ENABLE_V2"] == "true"
        assert etcd["ETCD_LISTEN_CLIENT_URLS"] == f"http://{ip}:2379,http://127.0.0.1:2379"
        assert etcd["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == f"http://{ip}:2380"
        servers = fleet["etcd_servers"].split(",")
        assert servers[0] == f"http://{ip}:2379"
        assert sorted(servers) == [f"http://{a}:2379" for a in IPS3]
        assert fleet["public_ip"] == ip
        assert fleet["metadata"] == f"role={'db' if i == 1 else 'web'},node=n{i}"
    assert len({c["/etc/default/etcd"]["ETCD_INITIAL_CLUSTER_TOKEN"] for c in configs}) == 1
    custom = parse_config(provision("--print-config", "2", "3", *IPS3, FLEETPY_METADATA="role=db,disk=ssd").stdout)
    assert custom["/etc/fleet/fleet.conf"]["metadata"] == "role=db,disk=ssd"


def v2(url: str, method: str = "GET", body: bytes | None = None) -> dict[str, Any]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"} if body else {})
    with urllib.request.urlopen(req, timeout=2) as resp:
        result: dict[str, Any] = json.load(resp)
        return result


@pytest.mark.etcd
def test_provisioned_etcd_config_forms_a_cluster_with_the_v2_api(tmp_path: Path) -> None:
    """The three members' /etc/default/etcd, as provision.sh writes it, run as real etcd processes on loopback
    addresses (127.A.B.11-13; only the data dir is moved, and 127.0.0.1:2379 dropped so test runs cannot clash)."""
    binary = etcd_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("etcd binary missing in CI: apt-get install etcd-server")
        pytest.skip("etcd not installed")
    net = f"127.{random.randint(2, 250)}.{random.randint(2, 250)}"
    ips = [f"{net}.{11 + i}" for i in range(3)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in (1, 2, 3):
            cfg = parse_config(provision("--print-config", str(i), "3", *ips).stdout)["/etc/default/etcd"]
            cfg["ETCD_DATA_DIR"] = str(tmp_path / f"n{i}")
            cfg["ETCD_LISTEN_CLIENT_URLS"] = cfg["ETCD_LISTEN_CLIENT_URLS"].replace(",http://127.0.0.1:2379", "")
            cfg["ETCD_LOG_LEVEL"] = "error"
            log = open(tmp_path / f"n{i}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(subprocess.Popen([binary], env={"PATH": "/usr/bin:/bin", **cfg}, stdout=log, stderr=log))
            log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                v2(f"http://{ips[0]}:2379/v2/keys/fleetpy-vagrant-test", "PUT", b"value=hello")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # the third member may still be joining or catching up when the first write lands: read it until then
        while True:
            try:
                got = v2(f"http://{ips[2]}:2379/v2/keys/fleetpy-vagrant-test?quorum=true")["node"]["value"]
                break
            except OSError:  # HTTPError 404 included
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert got == "hello"
        members = v2(f"http://{ips[1]}:2379/v2/members")["members"]
        assert sorted(m["name"] for m in members) == ["n1", "n2", "n3"]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
