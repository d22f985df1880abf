"""``Lab``: the facade over one named lab; the only class tests and the CLI need (see ``fleetpy.lab``).

I/O. Every call re-reads ``lab.json``, so a ``Lab`` made in one process drives a lab brought up by another
(``fleetpy lab up`` in a shell, then ``Lab("fleetpy")`` in a test, or the reverse).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fleetpy.errors import LabError
from fleetpy.lab import agent, cgroups, faults, lifecycle
from fleetpy.lab.host import Host
from fleetpy.lab.node import Node
from fleetpy.lab.state import DEFAULT_NAME, DEFAULT_ROOT, LabPaths, LabRecord, check_name, lab_dir, read_record
from fleetpy.lab.status import LabStatus, gather


class Lab:
    """A lab named ``name`` whose state lives in ``state_dir`` (default ``$FLEETPY_LAB_DIR/<name>`` or
    ``/var/lib/fleetpy/lab/<name>``). Creating the object touches nothing; ``up`` builds the lab."""

    def __init__(self, name: str = DEFAULT_NAME, state_dir: str | os.PathLike[str] | None = None, *,
                 host: Host | None = None) -> None:
        self.name = check_name(name)
        self.dir = lab_dir(name, state_dir)
        self.paths = LabPaths(self.dir)
        self.host = host or Host()

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, {str(self.dir)!r})"

    # -- life ------------------------------------------------------------------------------------------------

    def up(self, nodes: int = 3, etcd_members: int = 1, metadata: Mapping[str, Mapping[str, str]] | None = None,
           agents: bool = True, agent_env: Mapping[str, str] | None = None, *, agent_ttl: str | None = None,
           subnet: str | None = None, progress: Callable[[str], None] | None = None) -> Lab:
        """Create the bridge, etcd, the nodes (systemd ``running``), their sshd and (``agents``) fleetpyd.

        ``agent_env`` is added to every agent's environment (e.g. ``FLEET_ETCD_KEY_PREFIX``); ``agent_ttl``
        sets ``FLEET_AGENT_TTL``; this process's ``PYTHONPATH`` is passed on (``agent.lab_agent_env``). On any
        failure everything created so far is removed before the error rises.
        """
        env = agent.lab_agent_env(agent_env, agent_ttl, os.environ)
        lifecycle.up(self.paths, self.name, self.host, nodes=nodes, etcd_members=etcd_members, metadata=metadata,
                     agents=agents, agent_env=env, subnet=subnet, progress=progress)
        return self

    def down(self) -> bool:
        """Remove everything of the lab; False (and nothing done) if it is not up. Safe to run twice."""
        record = read_record(self.paths)
        if record is None:
            return False
        self.host.require_root()
        lifecycle.teardown(self.paths, record, self.host)
        if self.dir.parent == Path(DEFAULT_ROOT):  # /var/lib/fleetpy/lab and /var/lib/fleetpy, once empty
            for parent in (self.dir.parent, self.dir.parent.parent):
                with contextlib.suppress(OSError):
                    parent.rmdir()
        return True

    @property
    def is_up(self) -> bool:
        return read_record(self.paths) is not None

    def status(self) -> LabStatus:
        self.host.require_root()
        return gather(self.paths, self.record)

    # -- what it is ------------------------------------------------------------------------------------------

    @property
    def record(self) -> LabRecord:
        record = read_record(self.paths)
        if record is None:
            raise LabError(f"no lab named {self.name} (looked in {self.dir}): `fleetpy lab up --name {self.name}`")
        return record

    @property
    def nodes(self) -> list[str]:
        return [n.name for n in self.record.nodes]

    def node_ip(self, node: str) -> str:
        return self.record.node(node).ip

    def machine_id(self, node: str) -> str:
        return self.record.node(node).machine_id

    def hostname(self, node: str) -> str:
        return self.record.node(node).hostname

    @property
    def bridge_ip(self) -> str:
        return self.record.bridge_ip

    @property
    def etcd_endpoints(self) -> list[str]:
        return self.record.endpoints

    @property
    def ssh_key_path(self) -> Path:
        return self.paths.ssh_key

    @property
    def known_hosts_path(self) -> Path:
        return self.paths.known_hosts

    def env(self) -> dict[str, str]:
        """The ``FLEETCTL_*`` variables that point fleetctl/fleetpy at this lab."""
        return {
            "FLEETCTL_ENDPOINT": ",".join(self.etcd_endpoints),
            "FLEETCTL_DRIVER": "etcd",
            "FLEETCTL_SSH_USERNAME": "root",
            "FLEETCTL_KNOWN_HOSTS_FILE": str(self.known_hosts_path),
            "FLEETCTL_SSH_IDENTITY": str(self.ssh_key_path),
            "FLEETCTL_STRICT_HOST_KEY_CHECKING": "true",
            "FLEETCTL_REMOTE_FLEETPY": os.path.join(sys.prefix, "bin", "fleetpy"),  # nodes see this venv
        }

    def node_dir(self, node: str) -> Path:
        return self.paths.node(self.record.node(node).name)

    def node_pid(self, node: str) -> int | None:
        """The node's PID 1 as the host sees it, or None when the node is off."""
        init = self._node(node).init()
        return init.pid if init else None

    def memory_usage(self, node: str) -> int | None:
        """Bytes charged to the node's cgroup (cgroup2 ``memory.current`` or v1 ``memory.usage_in_bytes``)."""
        return cgroups.memory_bytes(self._node(node).cgroup_dirs())

    # -- inside a node ---------------------------------------------------------------------------------------

    def exec(self, node: str, argv: Sequence[str], check: bool = False, timeout: float | None = 60.0, *,
             input: str | None = None, env: Mapping[str, str] | None = None,
             capture: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the node's namespaces (nsenter). Text output captured unless ``capture=False``.

        ``check=True`` raises LabError on a non-zero exit. The process stays in the caller's host cgroups:
        run anything long-lived as a unit (``systemd-run``) instead.
        """
        return self._node(node).exec(argv, check=check, timeout=timeout, input=input, env=env, capture=capture)

    def start_agent(self, node: str, env: Mapping[str, str] | None = None) -> None:
        """(Re)start fleetpyd.service in ``node``; ``env`` overrides the lab's agent environment."""
        handle = self._node(node)
        agent.start(handle, agent.agent_environment(self.record, handle.record, env))

    def stop_agent(self, node: str, signal: str | None = None) -> None:
        """Stop fleetpyd cleanly, or send it ``signal`` (e.g. ``"SIGKILL"``) through ``systemctl kill``."""
        agent.stop(self._node(node), signal)

    def agent_pid(self, node: str) -> int | None:
        """fleetpyd's MainPID inside the node's PID namespace, or None."""
        return agent.main_pid(self._node(node))

    # -- faults ----------------------------------------------------------------------------------------------

    def poweroff(self, node: str) -> None:
        faults.poweroff(self._node(node))

    def kill(self, node: str) -> None:
        faults.kill(self._node(node))

    def start(self, node: str) -> None:
        faults.start(self.paths, self.record, self.host, self._node(node))

    def cut(self, node: str) -> None:
        self.host.require_root()
        faults.cut(self.record, node)

    def heal(self, node: str) -> None:
        self.host.require_root()
        faults.heal(self.record, node)

    def etcd_stop(self, member: str) -> None:
        self.host.require_root()
        faults.etcd_stop(self.paths, self.record, member)

    def etcd_start(self, member: str) -> None:
        self.host.require_root()
        faults.etcd_start(self.paths, self.record, self.host, member)

    def _node(self, node: str) -> Node:
        self.host.require_root()
        record = self.record
        return Node(record.name, self.paths, record.node(node))
