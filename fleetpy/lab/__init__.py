"""fleetpy.lab: a real multi-node cluster on one machine (each node a systemd PID 1 in its own namespaces).

Public API (stable; other test suites build on it)::

    from fleetpy.lab import Lab

    lab = Lab("mylab")                      # state in $FLEETPY_LAB_DIR/mylab or /var/lib/fleetpy/lab/mylab
    lab = Lab("mylab", state_dir="/some/dir")   # or exactly there
    lab.up(nodes=3, etcd_members=1,         # 1 or 3 members on the bridge address, v2 enabled
           metadata={"node1": {"role": "db"}},
           agents=True,                     # fleetpyd.service in every node (FLEET_* env, see below)
           agent_env={"FLEET_ETCD_KEY_PREFIX": "/x"}, agent_ttl="5s",
           subnet=None)                     # default: a free 10.x.y.0/24
    lab.down()                              # everything removed; False if there was no lab; safe twice
    lab.status() -> LabStatus               # per node: systemd state, link, fleetpyd; per etcd member: health
    lab.is_up, lab.nodes (["node1", ...]), lab.node_ip(n), lab.machine_id(n), lab.hostname(n), lab.bridge_ip
    lab.etcd_endpoints                      # ["http://10.x.y.1:PORT", ...]
    lab.exec(n, argv, check=False, timeout=60, input=None, env=None, capture=True) -> CompletedProcess[str]
    lab.poweroff(n), lab.kill(n), lab.start(n)   # clean shutdown / SIGKILL of PID 1 / boot with same identity
    lab.cut(n), lab.heal(n)                 # unplug / replug the node's link to the bridge
    lab.etcd_stop(m), lab.etcd_start(m)     # m: "etcd1" or "1"
    lab.ssh_key_path, lab.known_hosts_path  # ed25519 lab key (root@<node ip>), "<ip> ssh-ed25519 AAAA..." lines
    lab.env() -> {"FLEETCTL_ENDPOINT": ..., "FLEETCTL_DRIVER": "etcd", ...}
    lab.start_agent(n, env=None), lab.stop_agent(n, signal=None), lab.agent_pid(n)
    lab.node_dir(n), lab.node_pid(n), lab.memory_usage(n)

Nodes are ``node1``..``nodeN`` (hostname ``nodeN``; ``<lab>-nodeN`` only if the host itself is named ``nodeN``),
at ``<subnet>.(10+N)`` with no default route. Agents get ``FLEET_ETCD_SERVERS``, ``FLEET_METADATA``
(``hostname=nodeN,<metadata>``), ``FLEET_PUBLIC_IP``, ``FLEET_AGENT_TTL`` (default 30s) plus ``agent_env``.
Errors are ``fleetpy.errors.LabError``. Needs root. Layout and safety rules: docs/lab.md.
"""

from fleetpy.lab.host import Host
from fleetpy.lab.lab import Lab
from fleetpy.lab.status import LabStatus, MemberStatus, NodeStatus

__all__ = ["Host", "Lab", "LabStatus", "MemberStatus", "NodeStatus"]
