"""Engine leadership: who may write the schedule, re-evaluated on every engine tick (fleet ``engine/engine.go``).

I/O through the registry's lease methods (CAS on ``lease/engine-leader``). Each ``check()``: refuse to lead if the
cluster's ``engine/version`` is newer than ours; renew our lease (CAS on its index); else acquire it if free;
else steal it only from a holder of an older version, and then wait out that holder's remaining TTL before
acting. A leader stops acting once its own lease could have expired (``deadline``, counted from before the renew
request), so two engines never act at once. The lease is released on a clean shutdown.

``lease_watch`` follows ``lease/`` and calls back when the lease is deleted (a leader's clean shutdown) or
expires (a dead leader): the other engines then try to take it at once instead of at their next tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from fleetpy.errors import LeaseLost, RegistryError
from fleetpy.model.records import Lease
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import ENGINE_VERSION, Registry
from fleetpy.registry.store import Event

log = logging.getLogger("fleetpy.engine.lease")


class Leadership:
    def __init__(self, registry: Registry, machine_id: str, *, ttl: int, version: int = ENGINE_VERSION,
                 renew_every: float | None = None, clock: Callable[[], float] = time.monotonic,
                 disabled: bool = False) -> None:
        self.registry = registry
        self.machine_id = machine_id
        self.ttl = ttl
        self.version = version
        self.renew_every = ttl / 5 if renew_every is None else renew_every
        self.clock = clock
        self.disabled = disabled
        self.lease: Lease | None = None
        self.deadline = 0.0  # our lease may have expired from here on
        self._leading_from = 0.0  # after a steal: when the previous holder's lease has surely expired
        self._renewed_at = float("-inf")
        self._was_leading = False
        self._outdated = False

    # -- state ----------------------------------------------------------------------------------------------
    def leading(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return self.lease is not None and self._leading_from <= now < self.deadline

    def _note(self, leading: bool, why: str) -> bool:
        if leading != self._was_leading:
            log.info("engine: %s engine leadership (%s)", "took" if leading else "lost", why)
        self._was_leading = leading
        return leading

    # -- the per-tick check ---------------------------------------------------------------------------------
    def check(self) -> bool:
        """True when this engine may act now. Registry errors propagate (the pass fails and is retried); while
        etcd cannot be reached a leader keeps acting only until its lease's deadline."""
        if self.disabled:
            return False
        now = self.clock()
        if not self.registry.ensure_engine_version(self.version):
            if not self._outdated:
                log.warning("engine: cluster engine version %d is newer than ours (%d): not leading",
                            self.registry.engine_version(), self.version)
            self._outdated = True
            self.release()
            return self._note(False, "cluster engine version is newer")
        self._outdated = False
        if self.lease is not None:
            if now - self._renewed_at < self.renew_every and now < self.deadline:
                return self._note(self.leading(now), "lease held")
            try:
                self.lease = self.registry.renew_lease(self.lease, self.ttl)
            except LeaseLost:
                self.lease = None
                return self._note(False, "lease changed hands or expired")
            self.deadline = now + self.ttl
            self._renewed_at = now
            return self._note(self.leading(now), "lease renewed")
        return self._note(self._acquire(now), "lease acquired")

    def _acquire(self, now: float) -> bool:
        lease = self.registry.acquire_lease(self.machine_id, self.version, self.ttl)
        if lease is not None:
            self._hold(lease, now, now + self.ttl, now)
            return True
        current = self.registry.lease()
        if current is None:  # expired between the two requests: next tick
            return False
        if current.machine_id == self.machine_id and current.version == self.version:
            try:  # our own lease from before a restart: adopt it
                renewed = self.registry.renew_lease(current, self.ttl)
            except LeaseLost:
                return False
            self._hold(renewed, now, now + self.ttl, now)
            return True
        if current.version >= self.version:
            log.debug("engine: lease held by %s (version %d)", current.machine_id, current.version)
            return False
        remaining = max(0.0, current.ttl)
        stolen = self.registry.steal_lease(current, self.machine_id, self.version, self.ttl + int(remaining + 0.999))
        if stolen is None:
            return False
        log.info("engine: stole the engine lease from %s (version %d < %d); waiting %.1fs for its lease to expire",
                 current.machine_id, current.version, self.version, remaining)
        self._hold(stolen, now, now + self.ttl + remaining, now + remaining)
        return self.leading(now)

    def _hold(self, lease: Lease, now: float, deadline: float, leading_from: float) -> None:
        self.lease = lease
        self.deadline = deadline
        self._leading_from = leading_from
        self._renewed_at = now

    def release(self) -> None:
        """Give the lease up (compare-and-delete, so a lease someone else took meanwhile is left alone)."""
        lease, self.lease = self.lease, None
        self.deadline = 0.0
        if lease is None:
            return
        try:
            self.registry.release_lease(lease)
        except RegistryError as err:
            log.warning("engine: could not release the engine lease (it will expire): %s", err)
            return
        if self._was_leading:
            log.info("engine: released engine leadership")
        self._was_leading = False


def lease_watch(registry: Registry, on_free: Callable[[], object], *, watch_timeout: float = 10.0) -> TreeCache:
    """A watch-maintained copy of ``lease/`` (run it with ``run(stop)``) that calls ``on_free`` whenever the
    engine lease is removed (released, expired, or its whole tree deleted). Renewals call nothing."""
    key = registry.keys.lease

    def changed(event: Event | None) -> None:
        if event is not None and event.action.removes and (event.node.key == key or event.node.is_dir):
            on_free()
    return TreeCache(registry.store, registry.keys.tree(Tree.LEASE), on_change=changed, watch_timeout=watch_timeout)
