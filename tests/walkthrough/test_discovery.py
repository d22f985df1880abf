"""The discovery sidekicks' ExecStart/ExecStopPost, run for real against a test etcd (v2 keys API).

systemd is not PID 1 here, so the test does systemd's part itself: the unit's Environment= values, then what an
EnvironmentFile would add, specifiers (%H and friends) and ``$$`` expanded, the command line split like systemd
splits it. Only loopback addresses are used.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetpy.model.unit import UnitFile
from fleetpy.testing import EtcdServer
from fleetpy.testing.etcd_server import free_port
from tests.walkthrough.tools import UNITS, require

DISCOVERY = [("mongo-discovery.service", "services/mongo"), ("demo-mongo-discovery.service", "services/demo-mongo")]


def systemd_argv(value: str, unit_name: str, hostname: str) -> list[str]:
    """ExecStart= as systemd would run it, for units that use no systemd environment expansion of their own."""
    specifiers = {"H": hostname, "n": unit_name, "N": unit_name.rsplit(".", 1)[0], "p": unit_name.split("@")[0]
                  .rsplit(".", 1)[0], "i": "", "%": "%"}
    out: list[str] = []
    i = 0
    while i < len(value):
        ch, nxt = value[i], value[i + 1 : i + 2]
        if ch == "%":
            assert nxt in specifiers, f"unexpected specifier %{nxt}"
            out.append(specifiers[nxt])
            i += 2
        elif ch == "$":
            assert nxt == "$", f"systemd would expand ${value[i + 1 : i + 10]!r}: use $$ for the shell"
            out.append("$")
            i += 2
        else:
            out.append(ch)
            i += 1
    assert "\\" not in value, "backslashes are C-unescaped by systemd: keep them out of these commands"
    return shlex.split("".join(out))


def unit_environment(u: UnitFile) -> dict[str, str]:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    for assignment in u.values("Service", "Environment"):
        key, _, val = assignment.partition("=")
        env[key] = val
    return env


def etcd_get(url: str, key: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"{url}/v2/keys/{key}", timeout=2) as resp:
            node: dict[str, object] = json.load(resp)["node"]
            return node
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def wait_for(predicate, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError("timed out")


class Sidekick:
    """One discovery unit's commands with a given environment: start() the loop, stop() = kill it, then
    ExecStopPost, as systemd does."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.unit = UnitFile.from_path(UNITS / name)
        self.hostname = f"wt-{uuid.uuid4().hex[:10]}"
        self.env = {**unit_environment(self.unit), **env}
        self.proc: subprocess.Popen[str] | None = None

    def argv(self, key: str) -> list[str]:
        (value,) = self.unit.values("Service", key)
        return systemd_argv(value, self.name, self.hostname)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv("ExecStart"), env=self.env, text=True, start_new_session=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def kill(self) -> str:
        """SIGTERM to the unit's processes (its cgroup, here its session); returns what it wrote on stderr."""
        if self.proc is None:
            return ""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _, err = self.proc.communicate(timeout=10)
        self.proc = None
        return err

    def stop_post(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv("ExecStopPost"), env=self.env, text=True, capture_output=True, timeout=30)


@pytest.fixture
def sidekicks() -> Iterator[list[Sidekick]]:
    made: list[Sidekick] = []
    yield made
    for s in made:
        s.kill()


@pytest.mark.etcd
@pytest.mark.parametrize(("name", "prefix"), DISCOVERY)
def test_announces_while_running_and_removes_on_stop(name: str, prefix: str, etcd_server: EtcdServer,
                                                     sidekicks: list[Sidekick]) -> None:
    require("curl", "curl")
    s = Sidekick(name, {"ETCD_ENDPOINT": etcd_server.url, "public_ip": "127.0.0.2"})
    sidekicks.append(s)
    key = f"{prefix}/{s.hostname}"
    s.start()
    node = wait_for(lambda: etcd_get(etcd_server.url, key))
    assert node["value"] == "127.0.0.2:27017"
    assert 0 < int(node["ttl"]) <= 60  # type: ignore[call-overload]
    assert s.proc is not None and s.proc.poll() is None, "the announce loop is the unit's main process"
    assert s.kill() == ""
    assert etcd_get(etcd_server.url, key) is not None, "only ExecStopPost removes the key"
    done = s.stop_post()
    assert done.returncode == 0, done.stderr
    assert etcd_get(etcd_server.url, key) is None


@pytest.mark.etcd
def test_endpoint_comes_from_fleet_conf_first_url(etcd_server: EtcdServer, sidekicks: list[Sidekick]) -> None:
    """With ETCD_ENDPOINT empty (the unit's default), etcd_servers from /etc/fleet/fleet.conf is used: its first
    URL, the machine's own member in the Vagrant cluster."""
    require("curl", "curl")
    dead = f"http://127.0.0.1:{free_port()}"
    s = Sidekick("mongo-discovery.service", {"etcd_servers": f"{etcd_server.url},{dead}", "public_ip": "127.0.0.3"})
    assert s.env["ETCD_ENDPOINT"] == ""
    sidekicks.append(s)
    s.start()
    node = wait_for(lambda: etcd_get(etcd_server.url, f"services/mongo/{s.hostname}"))
    assert node["value"] == "127.0.0.3:27017"
    s.kill()
    assert s.stop_post().returncode == 0
    assert etcd_get(etcd_server.url, f"services/mongo/{s.hostname}") is None


@pytest.mark.etcd
def test_manager_environment_wins_over_fleet_conf(etcd_server: EtcdServer, sidekicks: list[Sidekick]) -> None:
    """FLEET_ETCD_SERVERS / FLEET_PUBLIC_IP (fleetpyd's variables, set in the node's manager environment) come
    before /etc/fleet/fleet.conf, as they do for fleetpyd itself."""
    require("curl", "curl")
    dead = f"http://127.0.0.1:{free_port()}"
    s = Sidekick("demo-mongo-discovery.service", {"FLEET_ETCD_SERVERS": etcd_server.url, "etcd_servers": dead,
                                                  "FLEET_PUBLIC_IP": "127.0.0.6", "public_ip": "127.0.0.7"})
    sidekicks.append(s)
    s.start()
    node = wait_for(lambda: etcd_get(etcd_server.url, f"services/demo-mongo/{s.hostname}"))
    assert node["value"] == "127.0.0.6:27017"
    s.kill()
    assert s.stop_post().returncode == 0
    assert etcd_get(etcd_server.url, f"services/demo-mongo/{s.hostname}") is None


@pytest.mark.etcd
def test_explicit_endpoint_wins_over_fleet_conf(etcd_server: EtcdServer, sidekicks: list[Sidekick]) -> None:
    require("curl", "curl")
    dead = f"http://127.0.0.1:{free_port()}"
    s = Sidekick("mongo-discovery.service", {"ETCD_ENDPOINT": etcd_server.url, "etcd_servers": dead,
                                             "FLEET_ETCD_SERVERS": dead, "public_ip": "127.0.0.4",
                                             "MONGO_PORT": "27018"})
    sidekicks.append(s)
    s.start()
    node = wait_for(lambda: etcd_get(etcd_server.url, f"services/mongo/{s.hostname}"))
    assert node["value"] == "127.0.0.4:27018"
    s.kill()
    assert s.stop_post().returncode == 0


def test_unreachable_etcd_is_reported_and_the_loop_keeps_going(sidekicks: list[Sidekick]) -> None:
    require("curl", "curl")
    s = Sidekick("mongo-discovery.service", {"ETCD_ENDPOINT": f"http://127.0.0.1:{free_port()}",
                                             "public_ip": "127.0.0.5"})
    sidekicks.append(s)
    s.start()
    time.sleep(1.0)
    assert s.proc is not None and s.proc.poll() is None
    err = s.kill()
    assert "cannot announce 127.0.0.5:27017 to http://127.0.0.1:" in err
    assert s.stop_post().returncode == 0, "a failed delete must not fail the stop"


def test_address_defaults_to_the_first_host_address(tmp_path: Path, sidekicks: list[Sidekick]) -> None:
    """Without public_ip the value is `hostname -I`'s first address; checked through a fake curl that records
    its arguments."""
    fake = tmp_path / "curl"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> {tmp_path}/curl.log\n")
    fake.chmod(0o755)
    s = Sidekick("mongo-discovery.service", {})
    s.env["PATH"] = f"{tmp_path}:{s.env['PATH']}"
    sidekicks.append(s)
    s.start()
    log = tmp_path / "curl.log"
    wait_for(lambda: log.exists() and "ttl=60" in log.read_text())
    s.kill()
    args = log.read_text().splitlines()
    first = (subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split() or [""])[0]
    assert args[:3] == ["-sf", "-X", "PUT"]
    assert args[3] == f"http://127.0.0.1:2379/v2/keys/services/mongo/{s.hostname}"
    assert f"value={first}:27017" in args
