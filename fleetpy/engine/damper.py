"""``LossDamper``: do not stampede when most of the cluster vanishes at once (fleet issue #1289).

No I/O; time is passed in. A machine is gone when its object is absent from ``machines/`` (its TTL expired), and
a lone loss is acted on at once. But when the machines that vanished outnumber those still present, the likely
cause is etcd itself (an election, a stall, a restore) expiring every TTL together, not the machines: their units
are then held in place for ``hold`` seconds so agents can re-register, and moved only if they do not.

The same holds for machines found missing within ``hold`` seconds after this engine could not reach etcd itself
(``trouble``): when etcd comes back every TTL has expired at once, and the agents re-register one by one, so the
last ones would otherwise be a minority and lose their units although they never went away.
"""

from __future__ import annotations


class LossDamper:
    def __init__(self, hold: float) -> None:
        self.hold = hold
        self._absent_since: dict[str, float] = {}
        self._trouble_at = float("-inf")

    def trouble(self, now: float) -> None:
        """The registry could not be reached at ``now`` (kept across ``reset``: a new term often follows it)."""
        self._trouble_at = now

    def observe(self, now: float, *, present: set[str], referenced: set[str]) -> frozenset[str]:
        """``referenced``: machines units are scheduled to. Returns the absent ones whose units stay put."""
        absent = referenced - present
        for machine_id in [m for m in self._absent_since if m not in absent]:
            del self._absent_since[machine_id]
        for machine_id in absent:
            self._absent_since.setdefault(machine_id, now)
        holding = {m for m in absent if now - self._absent_since[m] < self.hold}
        if len(absent) > len(present):
            return frozenset(holding)
        return frozenset(m for m in holding if 0 <= self._absent_since[m] - self._trouble_at < self.hold)

    def reset(self) -> None:
        self._absent_since.clear()
