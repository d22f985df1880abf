"""The floor under a cluster start: the same units started by systemd alone, on the same lab nodes, no fleetpy.

Each node starts its share of ``count`` sleeper units with one blocking ``systemctl start`` (systemd's private
socket, no etcd, no scheduling), all nodes at once; the figure is the time until every node's command returned
(a simple service is active once forked). Measured right before each fleetpy start of the same size, it tells how
much of that start is systemd's own work on this machine at that moment: on two cores the two move together with
the machine's speed, and fleetpy's cost is the difference. The units are stopped again before fleetpy's start.
"""

from __future__ import annotations

from bench.common import Figure, stopwatch
from fleetpy.lab import Lab
from fleetpy.parallel import pmap

UNIT = "floor@.service"
BODY = "[Unit]\nDescription=Floor %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"


def install(lab: Lab) -> None:
    """The template on every node, under /run/systemd/system (fleetpyd manages only its own unit files)."""
    for node in lab.nodes:
        lab.exec(node, ["sh", "-c", f"printf '%s' '{BODY}' > /run/systemd/system/{UNIT} && systemctl daemon-reload"],
                 check=True)


def systemd_alone(lab: Lab, count: int) -> float:
    """Seconds until ``count`` floor units (an equal share per node) are active, then stops them."""
    nodes = list(lab.nodes)
    template = UNIT.split("@")[0]
    names = [f"{template}@{i}.service" for i in range(1, count // len(nodes) + 1)]

    def start(node: str) -> None:
        proc = lab.exec(node, ["systemctl", "start", *names], timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"systemctl start of the floor units failed on {node}: {proc.stderr.strip()[:200]}")

    try:
        with stopwatch() as took:
            pmap(start, nodes, workers=len(nodes))
        return took()
    finally:
        for node in nodes:
            lab.exec(node, ["systemctl", "stop", f"{template}@*.service"], timeout=120)


def figure(lab: Lab, count: int, samples: list[float]) -> Figure:
    nodes = len(lab.nodes)
    return Figure("cluster", f"{count} units -> all active by systemd alone, no fleetpy ({nodes} nodes)", "s",
                  samples, reference="-",
                  note="the floor: one `systemctl start` of each node's share, all nodes at once, right before "
                       "each fleetpy start of the same size (bench/scenarios/floor.py)")
