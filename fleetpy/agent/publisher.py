"""``StatePublisher``: publishes what systemd says about this machine's units to ``states/<unit>/<machine>``.

I/O component (systemd reads, registry writes through a ``KeyedWriter``). One ``ListUnitsByNames`` call per poll
for all owned units (every 1 s as fleet's, every 50 ms for a while after the agent acted). States, their legacy
copies and the ``job-state`` heartbeats of launched units are written WITHOUT a TTL and only when they change, so
an idle agent makes no request for them however many units it runs (fleet refreshed each one's TTL). Who removes them
when the machine dies: the leading engine (``engine/sweep.py``), once the machine's key has expired. A unit that is
no longer owned loses its state. When the machine had to register again (its key expired: its states may have
been swept) everything is written again (``republish``); ``verify`` repairs heartbeats from the agent's cache of
the job tree, which costs no request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from fleetpy.agent.writer import KeyedWriter, Op, Put
from fleetpy.errors import FleetError
from fleetpy.loop import Trigger
from fleetpy.model.records import UnitState
from fleetpy.registry import codec
from fleetpy.registry.registry import Registry
from fleetpy.systemd.base import SystemdState, UnitManager

log = logging.getLogger("fleetpy.agent.publisher")

Fingerprint = tuple[str, str, str, str]  # load, active, sub, hash
_UNKNOWN: Fingerprint = ("", "", "", "")  # an adopted state that must be written again whatever it holds
LEGACY_DELAY = 1.0  # fleet's legacy state/<unit> copy (no reader uses it) waits: a start's transient states and the
# burst itself cost one write of it per unit, after the writes that readers wait for. It is a background write: it
# goes once the publisher has had nothing else to write for this long (at most 30 s late). A 1,000-unit start on 10
# nodes wrote ~1,000 of them while the CLI's and the engine's writes were still coming
POLL_INTERVAL = 1.0  # fleet's UnitStateGenerator polled every 1 s. At 0.5 s the polls of 100 units were most of an
# idle node's fleetpyd, systemd and dbus-daemon CPU, and a unit the agent acts on is polled every 50 ms anyway
VERIFY_GRACE = 5.0  # a heartbeat written or cleared this recently may not be in the job cache yet


class StatePublisher:
    def __init__(self, *, registry: Registry, manager: UnitManager, machine_id: str,
                 poll_interval: float = POLL_INTERVAL, burst_interval: float = 0.05, burst: float = 3.0,
                 workers: int = 8,
                 verify_grace: float = VERIFY_GRACE, legacy_delay: float = LEGACY_DELAY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.manager = manager
        self.machine_id = machine_id
        self.poll_interval = poll_interval
        self.burst_interval = burst_interval
        self.burst = burst
        self.verify_grace = verify_grace
        self.legacy_delay = legacy_delay
        self.clock = clock
        self.trigger = Trigger()
        self.writer = KeyedWriter(workers=workers, name="publisher", store=registry.store)
        self._lock = threading.Lock()
        self._owned: dict[str, str] = {}  # name -> hash of the local file
        self._launched: set[str] = set()
        self._tracked = threading.Event()  # no poll before the agent said what it owns
        self._sent: dict[str, Fingerprint] = {}  # last state handed to the writer
        self._published: set[str] = set()  # states known to be in the registry (removed by purge)
        self._beat_at: dict[str, float] = {}  # when a heartbeat write or clear was last handed to the writer
        self._hot: dict[str, float] = {}  # units polled every burst_interval until settled (or until then)
        self._full_at = float("-inf")  # when every owned unit was last polled
        self._poll_failing = ""
        self.polls = 0

    # -- called by the agent ------------------------------------------------------------------------------
    def track(self, owned: Mapping[str, str], launched: Iterable[str]) -> None:
        with self._lock:
            self._owned = dict(owned)
            self._launched = set(launched) & set(owned)
        self._tracked.set()

    def kick(self, names: Iterable[str] | None = None) -> None:
        """Something changed: poll now, and the units acted on (``names``; None: every owned unit) every
        ``burst_interval`` until each has settled (active or failed when launched, inactive otherwise) or
        ``burst`` s passed; the others at the usual ``poll_interval``."""
        with self._lock:
            until = self.clock() + self.burst
            for name in self._owned if names is None else names:
                self._hot[name] = until
        self.trigger.fire()

    def heartbeat(self, name: str, *, fresh: bool = True) -> None:
        """Say ``name`` is launched here (``job-state``): written now, or (``fresh=False``: an adopted unit) only
        if ``verify`` finds the registry does not say so already."""
        with self._lock:
            self._launched.add(name)
            if not fresh:
                return
            self._beat_at[name] = self.clock()
        self.writer.submit(f"hb:{name}", self._beat_op(name))

    def clear_heartbeat(self, name: str) -> None:
        with self._lock:
            self._launched.discard(name)
            self._beat_at[name] = self.clock()
        self.writer.submit(f"hb:{name}", self._clear_op(name))

    def adopt(self, *, rewrite: bool = False) -> None:
        """At start: take over this machine's states still in the registry, so unchanged ones are not rewritten
        and ones for units no longer here are removed by the first poll. ``rewrite``: the machine had to be
        registered anew (its key had expired, so the engine may be sweeping them): write every one again."""
        for state in self.registry.unit_states(machine_id=self.machine_id):
            with self._lock:
                self._sent[state.name] = _UNKNOWN if rewrite else (state.load_state, state.active_state,
                                                                   state.sub_state, state.unit_hash)
                self._published.add(state.name)

    def republish(self) -> None:
        """The machine registered again after its key expired: the engine may have swept this machine's states
        and heartbeats. Write every one again (the next poll rewrites the states, heartbeats go now)."""
        with self._lock:
            for name in self._sent:
                self._sent[name] = _UNKNOWN
            launched = sorted(self._launched)
            now = self.clock()
            for name in launched:
                self._beat_at[name] = now
        log.info("republishing the states of %d units and %d heartbeats", len(self._sent), len(launched))
        for name in launched:
            self.writer.submit(f"hb:{name}", self._beat_op(name))
        self.kick()

    def verify(self, jobs: Mapping[str, tuple[str | None, str | None]]) -> None:
        """Repair heartbeats from the agent's cached job tree (``unit -> (target, job-state)``, at least of
        every job launched here or whose ``job-state`` names this machine): a launched unit scheduled here whose
        ``job-state`` does not name this machine gets it written, a ``job-state`` naming this machine for a unit
        not launched here is cleared. Global units (no target) are only cleared, never rewritten: every machine
        running one writes it at start, the last one wins, as in fleet. No request unless something is wrong."""
        me = self.machine_id
        now = self.clock()
        beat: list[str] = []
        clear: list[str] = []
        with self._lock:
            for name, (target, value) in jobs.items():
                if now - self._beat_at.get(name, float("-inf")) < self.verify_grace:
                    continue
                if name in self._launched and value != me and target == me:
                    beat.append(name)
                elif name not in self._launched and value == me:
                    clear.append(name)
            for name in beat + clear:
                self._beat_at[name] = now
            if len(self._beat_at) > 2 * len(jobs) + 64:
                self._beat_at = {n: t for n, t in self._beat_at.items() if n in jobs}
        for name in beat:
            log.info("heartbeat of %s missing from the registry: writing it", name)
            self.writer.submit(f"hb:{name}", self._beat_op(name))
        for name in clear:
            log.info("heartbeat of %s names this machine but it is not launched here: clearing it", name)
            self.writer.submit(f"hb:{name}", self._clear_op(name))

    # -- work ---------------------------------------------------------------------------------------------
    def poll(self, *, full: bool = True) -> None:
        """One ``states`` call for every owned unit (``full=False``: for the units acted on that have not
        settled yet); hand changed states and removals to the writer."""
        if not self._tracked.is_set():
            return
        now = self.clock()
        with self._lock:
            owned = dict(self._owned)
            if full:
                self._full_at = now
            else:
                owned = {n: h for n, h in owned.items() if self._hot.get(n, 0.0) > now}
        started = time.monotonic()
        states = self.manager.states(sorted(owned)) if owned else {}
        self.polls += 1
        with self._lock:
            gone = [name for name in self._sent if name not in self._owned]
            for name in gone:
                del self._sent[name]
            changed = []
            for name, unit_hash in owned.items():
                sd = states.get(name)
                if sd is None:
                    continue
                if self._settled(name, sd.active) or self._hot.get(name, 0.0) <= now:
                    self._hot.pop(name, None)
                fingerprint = (sd.load, sd.active, sd.sub, unit_hash)
                if self._sent.get(name) != fingerprint:
                    self._sent[name] = fingerprint
                    changed.append((name, sd, unit_hash))
        for name in gone:
            self._cancel_legacy(name)
            self.writer.submit(f"st:{name}", self._remove_op(name), urgent=True)
        for name, sd, unit_hash in changed:
            state = self._state(name, sd, unit_hash)
            body = codec.encode_unit_state(state)
            self.writer.submit(f"st:{name}", self._save_op(state, body), urgent=True)
            self.writer.submit(f"legacy:{name}", self._legacy_op(state, body), delay=self.legacy_delay,
                               background=True)
        if gone or changed:
            log.debug("poll of %d units: %d changed, %d gone (%.1f ms)", len(owned), len(changed), len(gone),
                      (time.monotonic() - started) * 1000)

    def _settled(self, name: str, active: str) -> bool:
        return active in (("active", "failed") if name in self._launched else ("inactive", "failed"))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with self._lock:
                    full = not self._hot or self.clock() - self._full_at >= self.poll_interval
                self.poll(full=full)
                if self._poll_failing:
                    log.info("systemd state polling recovered")
                self._poll_failing = ""
            except FleetError as err:
                if str(err) != self._poll_failing:
                    log.warning("systemd state polling failed: %s", err)
                self._poll_failing = str(err)
            now = self.clock()
            with self._lock:
                for name in [n for n, until in self._hot.items() if until <= now or n not in self._owned]:
                    del self._hot[name]
                interval = self.burst_interval if self._hot else self.poll_interval
            self.trigger.wait(interval)

    def purge(self, timeout: float = 10.0) -> bool:
        """Remove every state and heartbeat this agent published (graceful shutdown); True when all done."""
        with self._lock:
            names = sorted(set(self._sent) | self._published)
            launched = sorted(self._launched)
            self._owned.clear()
            self._sent.clear()
        for name in names:
            self._cancel_legacy(name)
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

    def _save_op(self, state: UnitState, body: str) -> Op:
        """``states/<unit>/<machine>`` (what readers use), first; the legacy copy follows as a separate write."""
        def then() -> None:
            with self._lock:
                self._published.add(state.name)
        return Put(self.registry.keys.state(state.name, state.machine_id), body, then)

    def _cancel_legacy(self, name: str) -> None:
        """Replace a pending legacy ``state/<unit>`` write with nothing: it must not outlive the state's removal."""
        self.writer.submit(f"legacy:{name}", lambda: None)

    def _legacy_op(self, state: UnitState, body: str) -> Op:
        """fleet's legacy ``state/<unit>`` (readers ignore it): written on change, no TTL."""
        return Put(self.registry.keys.legacy_state(state.name), body)

    def _remove_op(self, name: str) -> Callable[[], None]:
        def op() -> None:
            self.registry.remove_unit_state(name, self.machine_id)
            with self._lock:
                self._published.discard(name)
        return op

    def _clear_op(self, name: str) -> Callable[[], None]:
        return lambda: self.registry.clear_unit_heartbeat(name, self.machine_id)

    def _beat_op(self, name: str) -> Op:
        """``job/<unit>/job-state`` = this machine (``Registry.unit_heartbeat`` without a TTL)."""
        return Put(self.registry.keys.job_state(name), self.machine_id)
