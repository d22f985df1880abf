"""``LossDamper``: do not stampede when most of the cluster vanishes at once (fleet issue #1289).

No I/O; time is passed in. A machine is gone when its object is absent from ``machines/`` (its TTL expired), and
a lone loss is acted on at once. But when the machines that vanished outnumber those still present, the likely
cause is etcd itself (an election, a stall, a restore) expiring every TTL together, not the machines: their units
are then held in place for ``hold`` seconds so agents can re-register, and moved only if they do not.

The same holds for machines found missing within ``hold`` seconds after an etcd *outage*: when etcd comes back
every TTL has expired at once, and the agents re-register one by one, so the last ones would otherwise be a
minority and lose their units although they never went away. An outage is a streak of failed requests of this
engine (``failed``) ended by a success (``succeeded``) that lasted at least ``outage`` seconds, from the first
failure to that success: long enough for a healthy agent's TTL to run out (agents refresh every TTL/2, so that
takes at least TTL/2 without etcd). A shorter streak, such as one request timing out on a loaded machine, is no
outage: it could not have expired anyone's TTL, and holding would only delay a genuine failover.
"""

from __future__ import annotations


class LossDamper:
    def __init__(self, hold: float, outage: float = 0.0) -> None:
        """``hold``: how long units of missing machines stay put; ``outage``: the shortest failure streak that
        counts as etcd trouble (0: any failure does)."""
        self.hold = hold
        self.outage = outage
        self._absent_since: dict[str, float] = {}
        self._failing_since: float | None = None
        self._trouble = (float("-inf"), float("-inf"))  # the last outage: (first failure, recovery)

    # -- etcd reachability (kept across ``reset``: a new term often follows an outage) ------------------
    def failed(self, now: float) -> None:
        """A request to the registry failed at ``now`` (a streak starts, or goes on)."""
        if self._failing_since is None:
            self._failing_since = now

    def succeeded(self, now: float) -> float | None:
        """A request succeeded at ``now``: ends a streak. Returns its length when it was an outage, else None."""
        since, self._failing_since = self._failing_since, None
        if since is None or now - since < self.outage:
            return None
        self._trouble = (since, now)
        return now - since

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    # -- machines ---------------------------------------------------------------------------------------
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
        began, ended = self._trouble
        return frozenset(m for m in holding if began <= self._absent_since[m] < ended + self.hold)

    def reset(self) -> None:
        self._absent_since.clear()
