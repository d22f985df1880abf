"""``LossDamper``: do not stampede when most of the cluster vanishes at once (fleet issue #1289).

No I/O; time is passed in. A machine is gone when its object is absent from ``machines/`` (its TTL expired), and
a lone loss is acted on at once. But when the machines that vanished outnumber those still present, the likely
cause is etcd itself (an election, a stall, a restore) expiring every TTL together, not the machines: their units
are then held in place for ``hold`` seconds so agents can re-register, and moved only if they do not.
"""

from __future__ import annotations


class LossDamper:
    def __init__(self, hold: float) -> None:
        self.hold = hold
        self._absent_since: dict[str, float] = {}

    def observe(self, now: float, *, present: set[str], referenced: set[str]) -> frozenset[str]:
        """``referenced``: machines units are scheduled to. Returns the absent ones whose units stay put."""
        absent = referenced - present
        for machine_id in [m for m in self._absent_since if m not in absent]:
            del self._absent_since[machine_id]
        for machine_id in absent:
            self._absent_since.setdefault(machine_id, now)
        if len(absent) <= len(present):
            return frozenset()
        return frozenset(m for m in absent if now - self._absent_since[m] < self.hold)

    def reset(self) -> None:
        self._absent_since.clear()
