"""fleetpyd serves fleet's API in every lab node (on the node's /run/fleet.sock): the CLI's lifecycle and list
commands work with ``--driver api`` as with ``--driver etcd``, and ``/metrics`` carries the daemon's figures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetpy.lab import Lab

pytestmark = pytest.mark.lab
FLEETPY = str(Path(sys.executable).parent / "fleetpy")
UNIT = "[Unit]\nDescription=api demo %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _host(lab: Lab, *args: str, check: bool = True) -> str:
    """``fleetpy`` run on the host with the lab's SSH settings but fleetctl's default driver and endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCTL_")}
    env.update({k: v for k, v in lab.env().items() if k not in ("FLEETCTL_DRIVER", "FLEETCTL_ENDPOINT")})
    proc = subprocess.run([FLEETPY, *args], env=env, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    return proc.stderr


def test_cli_through_the_api_socket_of_a_node(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(nodes=2, agents=True, agent_ttl="5s")
    unit = lab.node_dir("node1") / "apidemo@.service"  # the lab dir is visible inside the nodes (/tmp is not)
    unit.write_text(UNIT)

    def cli(*args: str, driver: str = "api") -> str:
        argv = [FLEETPY, f"--driver={driver}"]
        if driver == "etcd":
            argv.append(f"--endpoint={','.join(lab.etcd_endpoints)}")
        proc = lab.exec("node1", [*argv, *args], timeout=60)
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    assert _wait(lambda: lab.exec("node1", ["test", "-S", "/run/fleet.sock"]).returncode == 0)
    assert _wait(lambda: len(cli("list-machines", "--no-legend").splitlines()) == 2)
    cli("submit", str(unit))
    cli("start", "--block-attempts=10", "apidemo@1.service", "apidemo@2.service")
    assert _wait(lambda: cli("list-units", "--no-legend", "--fields=unit,active").count("active") == 2)
    for command in (["list-units"], ["list-unit-files"], ["list-machines"], ["cat", "apidemo@1.service"]):
        assert cli(*command) == cli(*command, driver="etcd"), command
        # from the host, fleetctl's defaults (api on unix:///var/run/fleet.sock) through --tunnel node1: the
        # socket is reached by 'fleetpy fd-forward /var/run/fleet.sock' run on node1 over SSH
        assert _host(lab, "--tunnel", lab.node_ip("node1"), *command) == cli(*command, driver="etcd"), command
    missing = _host(lab, "--tunnel", lab.node_ip("node1"), "--remote-fleetpy", "/nonexistent/fleetpy",
                    "list-machines", check=False)
    assert missing.count("\n") == 1 and "Traceback" not in missing, missing
    cli("stop", "apidemo@1.service")
    cli("destroy", "apidemo@1.service", "apidemo@2.service", "apidemo@.service")
    assert _wait(lambda: "apidemo" not in cli("list-units"))

    metrics = lab.exec("node1", ["python3", "-c", (
        "import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect('/run/fleet.sock');"
        "s.sendall(b'GET /metrics HTTP/1.0\\r\\n\\r\\n');d=b''\n"
        "while True:\n c=s.recv(65536)\n if not c: break\n d+=c\n"
        "sys.stdout.write(d.split(b'\\r\\n\\r\\n',1)[1].decode())")]).stdout
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples}
    for prefix in ("fleet_registry_operation_count", "fleet_agent_reconcile_count"):  # node1 may not lead
        assert any(v > 0 for k, v in samples.items() if k.startswith(prefix)), (prefix, sorted(samples))
