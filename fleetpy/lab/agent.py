"""fleetpyd inside lab nodes: its environment (pure) and start/stop/PID through the node's systemd.

``agent_environment`` builds the ``FLEET_*`` variables fleetpyd reads; ``start`` runs ``<venv>/bin/fleetpyd`` as
the transient unit ``fleetpyd.service`` in a node (the venv of the running interpreter, which nodes see at the
same path as the host).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from fleetpy.errors import LabError
from fleetpy.lab.node import Node
from fleetpy.lab.state import LabRecord, NodeRecord

UNIT = "fleetpyd.service"
DEFAULT_TTL = "30s"
# After=dbus.service, as units/fleetpyd.service: at poweroff fleetpyd then stops (its units through D-Bus) before
# D-Bus does; without it its stop calls failed, it hung until TimeoutStopSec and its machine key expired by TTL
PROPERTIES = ("Description=fleetpyd (fleetpy lab agent)", "After=dbus.service", "Wants=dbus.service", "KillMode=mixed",
              "TimeoutStopSec=10s")


def fleetpyd_path() -> str:
    return os.path.join(sys.prefix, "bin", "fleetpyd")


def metadata_string(node: NodeRecord) -> str:
    """fleet's ``key=value,key=value``: ``hostname=<node>`` first, then the node's metadata in key order."""
    items = {"hostname": node.hostname, **dict(node.metadata)}
    return ",".join(f"{k}={v}" for k, v in [("hostname", items.pop("hostname")), *sorted(items.items())])


def agent_environment(record: LabRecord, node: NodeRecord, overrides: Mapping[str, str] | None = None
                      ) -> dict[str, str]:
    env = {
        "FLEET_ETCD_SERVERS": ",".join(record.endpoints),
        "FLEET_METADATA": metadata_string(node),
        "FLEET_PUBLIC_IP": node.ip,
        "FLEET_AGENT_TTL": DEFAULT_TTL,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(record.agent_env)
    env.update(overrides or {})
    return env


def lab_agent_env(agent_env: Mapping[str, str] | None, agent_ttl: str | None,
                  environ: Mapping[str, str]) -> dict[str, str]:
    """What a lab records for its agents: ``agent_env``, ``FLEET_AGENT_TTL`` from ``agent_ttl``, and the
    ``PYTHONPATH`` of ``environ`` (the process bringing the lab up) unless ``agent_env`` sets one: fleetpyd then
    imports the same fleetpy tree as that process. Without it a node ran the venv's installed tree whatever the
    host's ``PYTHONPATH`` said, and A/B runs of one tree against another compared the installed tree with itself
    on the nodes (bench/PROFILING.md, fifteenth round)."""
    env = dict(agent_env or {})
    if agent_ttl is not None:
        env["FLEET_AGENT_TTL"] = agent_ttl
    if environ.get("PYTHONPATH") and "PYTHONPATH" not in env:
        env["PYTHONPATH"] = environ["PYTHONPATH"]
    return env


def start(node: Node, env: Mapping[str, str], binary: str | None = None) -> None:
    binary = binary or fleetpyd_path()
    if not os.access(binary, os.X_OK):
        raise LabError(f"{binary} not found: pip install -e . in the venv the lab runs from")
    node.exec(["systemctl", "stop", UNIT], timeout=20)
    node.exec(["systemctl", "reset-failed", UNIT], timeout=10)
    # Units on the node (discovery sidekicks) find etcd and their address the way they would on a machine
    # whose fleet.conf is readable: through the manager environment, since lab nodes share the host's /etc.
    shared = [f"{key}={env[key]}" for key in ("FLEET_ETCD_SERVERS", "FLEET_PUBLIC_IP") if env.get(key)]
    if shared:
        node.exec(["systemctl", "set-environment", *shared], timeout=10)
    node.systemd_run(UNIT, [binary], properties=PROPERTIES, env=env)


def stop(node: Node, signal: str | None = None) -> None:
    """``systemctl stop`` (clean), or ``systemctl kill -s SIGNAL`` (e.g. ``"SIGKILL"`` for a crash)."""
    if signal is None:
        node.exec(["systemctl", "stop", UNIT], timeout=20)
    else:
        node.exec(["systemctl", "kill", "-s", signal, UNIT], timeout=10)


def main_pid(node: Node) -> int | None:
    """fleetpyd's PID *inside the node's PID namespace*, or None when it is not running."""
    proc = node.exec(["systemctl", "show", "-p", "MainPID", "--value", UNIT], timeout=10)
    text = (proc.stdout or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None
