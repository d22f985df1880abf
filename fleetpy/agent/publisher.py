"""``StatePublisher``: publishes what systemd says about this machine's units to ``states/<unit>/<machine>``.

I/O component (systemd reads, registry writes through a ``KeyedWriter``). One ``ListUnitsByNames`` call per poll
for all owned units (every 0.5 s, every 50 ms for a while after the agent acted); a state is written only when it
changed, and its TTL is refreshed (not rewritten: no watch fires) before agent_ttl runs out. The ``job-state``
heartbeat of launched units is kept the same way. A unit that is no longer owned loses its state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from fleetpy.agent.writer import KeyedWriter
from fleetpy.errors import FleetError, NotFound
from fleetpy.loop import Trigger
from fleetpy.model.records import UnitState
from fleetpy.registry import codec
from fleetpy.registry.registry import Registry
from fleetpy.systemd.base import SystemdState, UnitManager

log = logging.getLogger("fleetpy.agent.publisher")

Fingerprint = tuple[str, str, str, str]  # load, active, sub, hash


def refresh_period(ttl: int) -> float:
    """How often TTLs are refreshed: at 4/5 of the TTL like fleet (3/5 for short TTLs, where the writer's
    latency is a larger share of the margin)."""
    return max(0.5, ttl * (0.8 if ttl >= 10 else 0.6))


class StatePublisher:
    def __init__(self, *, registry: Registry, manager: UnitManager, machine_id: str, ttl: int,
                 poll_interval: float = 0.5, burst_interval: float = 0.05, burst: float = 3.0, workers: int = 8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.manager = manager
        self.machine_id = machine_id
        self.ttl = ttl
        self.poll_interval = poll_interval
        self.burst_interval = burst_interval
        self.burst = burst
        self.clock = clock
        self.trigger = Trigger()
        self.writer = KeyedWriter(workers=workers, name="publisher")
        self._lock = threading.Lock()
        self._owned: dict[str, str] = {}  # name -> hash of the local file
        self._launched: set[str] = set()
        self._tracked = threading.Event()  # no poll before the agent said what it owns
        self._sent: dict[str, Fingerprint] = {}  # last state handed to the writer
        self._published: set[str] = set()  # states known to be in the registry (to refresh)
        self._burst_until = 0.0
        self._next_refresh = clock() + refresh_period(ttl)
        self._poll_failing = ""
        self.polls = 0

    # -- called by the agent ------------------------------------------------------------------------------
    def track(self, owned: Mapping[str, str], launched: Iterable[str]) -> None:
        with self._lock:
            self._owned = dict(owned)
            self._launched = set(launched) & set(owned)
        self._tracked.set()

    def kick(self) -> None:
        """Something changed: poll now and often for a little while."""
        with self._lock:
            self._burst_until = self.clock() + self.burst
        self.trigger.fire()

    def heartbeat(self, name: str, *, fresh: bool = True) -> None:
        """Say ``name`` is launched here (``job-state``): written now, or (``fresh=False``) refreshed if present."""
        with self._lock:
            self._launched.add(name)
        self.writer.submit(f"hb:{name}", self._beat_op(name, fresh=fresh))

    def clear_heartbeat(self, name: str) -> None:
        with self._lock:
            self._launched.discard(name)
        self.writer.submit(f"hb:{name}", self._clear_op(name))

    def adopt(self) -> None:
        """At start: take over this machine's states still in the registry, so unchanged ones are not rewritten
        (and ones for units no longer here are removed by the first poll)."""
        for state in self.registry.unit_states(machine_id=self.machine_id):
            with self._lock:
                self._sent[state.name] = (state.load_state, state.active_state, state.sub_state, state.unit_hash)
                self._published.add(state.name)
        # their TTLs were last refreshed by the previous run, up to a refresh period ago: refresh them at once, or
        # they expire (and list-units loses the running units) until our own first refresh
        self._next_refresh = self.clock()

    # -- work ---------------------------------------------------------------------------------------------
    def poll(self) -> None:
        """One ``states`` call for every owned unit; hand changed states and removals to the writer."""
        if not self._tracked.is_set():
            return
        with self._lock:
            owned = dict(self._owned)
        started = time.monotonic()
        states = self.manager.states(sorted(owned)) if owned else {}
        self.polls += 1
        with self._lock:
            gone = [name for name in self._sent if name not in owned]
            for name in gone:
                del self._sent[name]
            changed = []
            for name, unit_hash in owned.items():
                sd = states.get(name)
                if sd is None:
                    continue
                fingerprint = (sd.load, sd.active, sd.sub, unit_hash)
                if self._sent.get(name) != fingerprint:
                    self._sent[name] = fingerprint
                    changed.append((name, sd, unit_hash))
        for name in gone:
            self.writer.submit(f"legacy:{name}", lambda: None)  # a pending legacy write must not outlive it
            self.writer.submit(f"st:{name}", self._remove_op(name), urgent=True)
        for name, sd, unit_hash in changed:
            state = self._state(name, sd, unit_hash)
            self.writer.submit(f"st:{name}", self._save_op(state), urgent=True)
            self.writer.submit(f"legacy:{name}", self._legacy_op(state))
        if gone or changed:
            log.debug("poll of %d units: %d changed, %d gone (%.1f ms)", len(owned), len(changed), len(gone),
                      (time.monotonic() - started) * 1000)

    def refresh(self) -> None:
        """Reset the TTL of every published state and heartbeat (recreating any that expired)."""
        with self._lock:
            published = sorted(self._published)
            launched = sorted(self._launched)
            sent = dict(self._sent)
        for name in published:
            fingerprint = sent.get(name)
            if fingerprint is not None:
                load, active, sub, unit_hash = fingerprint
                state = self._state(name, SystemdState(load, active, sub), unit_hash)
                self.writer.submit(f"st:{name}", self._refresh_op(state))
        for name in launched:
            self.writer.submit(f"hb:{name}", self._beat_op(name, fresh=False))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll()
                if self._poll_failing:
                    log.info("systemd state polling recovered")
                self._poll_failing = ""
            except FleetError as err:
                if str(err) != self._poll_failing:
                    log.warning("systemd state polling failed: %s", err)
                self._poll_failing = str(err)
            now = self.clock()
            if now >= self._next_refresh:
                self.refresh()
                self._next_refresh = now + refresh_period(self.ttl)
            with self._lock:
                interval = self.burst_interval if now < self._burst_until else self.poll_interval
            self.trigger.wait(interval)

    def purge(self, timeout: float = 10.0) -> bool:
        """Remove every state and heartbeat this agent published (graceful shutdown); True when all done."""
        with self._lock:
            names = sorted(set(self._sent) | self._published)
            launched = sorted(self._launched)
            self._owned.clear()
            self._sent.clear()
        for name in names:
            self.writer.submit(f"st:{name}", self._remove_op(name))
        for name in launched:
            self.writer.submit(f"hb:{name}", self._clear_op(name))
        return self.writer.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.writer.flush(timeout)
        self.writer.close()

    # -- ops (run on writer threads) ------------------------------------------------------------------------
    def _state(self, name: str, sd: SystemdState, unit_hash: str) -> UnitState:
        return UnitState(name=name, machine_id=self.machine_id, load_state=sd.load, active_state=sd.active,
                         sub_state=sd.sub, unit_hash=unit_hash)

    def _save_op(self, state: UnitState) -> Callable[[], None]:
        """``states/<unit>/<machine>`` (what readers use), first; the legacy copy follows as a separate write."""
        registry = self.registry

        def op() -> None:
            registry.store.set(registry.keys.state(state.name, state.machine_id), codec.encode_unit_state(state),
                               ttl=self.ttl)
            with self._lock:
                self._published.add(state.name)
        return op

    def _legacy_op(self, state: UnitState) -> Callable[[], None]:
        """fleet's legacy ``state/<unit>`` (readers ignore it): written on change, left to expire otherwise."""
        registry = self.registry

        def op() -> None:
            registry.store.set(registry.keys.legacy_state(state.name), codec.encode_unit_state(state), ttl=self.ttl)
        return op

    def _refresh_op(self, state: UnitState) -> Callable[[], None]:
        def op() -> None:
            try:
                self.registry.refresh_unit_state(state.name, self.machine_id, self.ttl)
            except NotFound:
                self.registry.save_unit_state(state, self.ttl)
        return op

    def _remove_op(self, name: str) -> Callable[[], None]:
        def op() -> None:
            self.registry.remove_unit_state(name, self.machine_id)
            with self._lock:
                self._published.discard(name)
        return op

    def _clear_op(self, name: str) -> Callable[[], None]:
        return lambda: self.registry.clear_unit_heartbeat(name)

    def _beat_op(self, name: str, *, fresh: bool) -> Callable[[], None]:
        registry, machine_id, ttl = self.registry, self.machine_id, self.ttl

        def op() -> None:
            if not fresh:
                try:
                    registry.store.refresh(registry.keys.job_state(name), ttl)
                    return
                except NotFound:
                    pass
            registry.unit_heartbeat(name, machine_id, ttl)
        return op
