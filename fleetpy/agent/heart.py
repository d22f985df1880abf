"""``Heart``: this machine's presence in the registry, ``machines/<id>/object`` with a TTL of agent_ttl.

I/O component. Registers at start (a machine-id already registered by a live agent elsewhere is refused: fleet's
duplicate machine-id check), refreshes the TTL every ttl/2 (a refresh fires no watch), rewrites the object when
its content changes (e.g. an autodetected public IP), and removes it on a clean shutdown. When the object had
expired and is registered again, ``on_register`` runs: the engine may have swept this machine's unit states (they
carry no TTL), so the publisher writes them all again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from fleetpy.errors import CASConflict, FleetError, NotFound, RegistryError
from fleetpy.model.records import MachineState
from fleetpy.registry.registry import Registry

log = logging.getLogger("fleetpy.agent.heart")


class DuplicateMachineError(FleetError):
    """Another live agent is registered with this machine's ID."""


class Heart:
    def __init__(self, *, registry: Registry, machine: Callable[[], MachineState], ttl: int,
                 takeover: bool = False, reclaim: bool = False, state_every: float = 60.0,
                 on_register: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, jitter: Callable[[], float] = random.random) -> None:
        """``machine`` gives the current machine state (re-read every ``state_every`` s). ``takeover``: the
        caller holds this machine's local agent lock, so a registration with the same ID and public IP is a
        previous incarnation of this agent (killed within the TTL) and may be overwritten. ``reclaim``: this
        process registered it itself (a rebuild after SIGHUP): overwrite whatever is there. ``on_register``: called
        after a beat found the object expired and registered it again."""
        self.registry = registry
        self.machine_source = machine
        self.machine = machine()
        self.ttl = ttl
        self.takeover = takeover
        self.reclaim = reclaim
        self.state_every = state_every
        self.clock = clock
        self.jitter = jitter  # [0, 1): how much of the first ttl/2 to wait before the first beat
        self._state_at = clock()
        self.on_register = on_register
        self.created = False  # register() created the object (no live registration was there to take over)
        self._maybe_created = False  # a create failed without an answer: it may have been applied
        self._failing = ""
        self.beats = 0

    @property
    def machine_id(self) -> str:
        return self.machine.id

    def register(self) -> None:
        """Create the machine object; DuplicateMachineError when a live machine already holds the ID."""
        for _ in range(3):
            try:
                self.registry.create_machine_state(self.machine, self.ttl)
                self.created = True
                log.info("registered machine %s (public IP %s)", self.machine.id, self.machine.public_ip or "-")
                return
            except CASConflict:
                existing = self.registry.machine(self.machine.id)
            except RegistryError:
                self._maybe_created = True  # e.g. a read timeout: the create may have happened (the caller retries)
                raise
            if existing is None:
                continue  # expired meanwhile: try again
            if self._maybe_created and existing == self.machine:
                # our own earlier attempt, whose answer was lost: the object is exactly what we wrote
                self._maybe_created = False
                self.created = True
                log.info("registered machine %s (an earlier attempt whose outcome was unknown had created it)",
                         self.machine.id)
                return
            if self.reclaim or (self.takeover and existing.public_ip == self.machine.public_ip):
                self.registry.set_machine_state(self.machine, self.ttl)
                log.info("took over the registration of machine %s left by a previous fleetpyd", self.machine.id)
                return
            raise DuplicateMachineError(
                f"machine-id {self.machine.id} is already registered by a machine with public IP "
                f"{existing.public_ip or '(none)'}: another fleetpyd runs with the same /etc/machine-id "
                f"(if it is a stale registration, it expires within {self.ttl}s)")
        raise DuplicateMachineError(f"machine-id {self.machine.id}: registration keeps conflicting")

    def beat(self) -> None:
        """Refresh the TTL; rewrite the object when the machine's state changed or the object expired."""
        now = self.clock()
        if now - self._state_at >= self.state_every:
            self._state_at = now
            current = self.machine_source()
            if current != self.machine:
                log.info("machine state changed (public IP %s, metadata %s): republishing",
                         current.public_ip, dict(current.metadata))
                self.machine = current
                if self.registry.set_machine_state(current, self.ttl):
                    self._registered_again()
                self.beats += 1
                return
        try:
            self.registry.refresh_machine_state(self.machine.id, self.ttl)
        except NotFound:
            log.warning("machine object of %s had expired: registering again", self.machine.id)
            self.registry.set_machine_state(self.machine, self.ttl)
            self._registered_again()
        self.beats += 1

    def _registered_again(self) -> None:
        if self.on_register is not None:
            self.on_register()

    def run(self, stop: threading.Event) -> None:
        """Beat every ttl/2, the first time after a random part of that: machines that registered together (a
        cluster started at once, a simulation's 1,000 machines) would otherwise beat together for good: 250 at
        once in a simulation worker process, where the last ones came more than ttl/2 late and expired. After a
        failure, retry every ttl/12 (fleet's monitor), logging once per outage."""
        wait = self.ttl / 2 * self.jitter()
        while not stop.wait(wait):
            wait = self.ttl / 2
            try:
                self.beat()
                if self._failing:
                    log.info("machine heartbeat recovered")
                self._failing = ""
            except FleetError as err:
                if not self._failing:
                    log.warning("machine heartbeat failed: %s", err)
                self._failing = str(err) or type(err).__name__
                wait = max(0.25, self.ttl / 12)

    def leave(self) -> None:
        """Clean shutdown: remove the machine object."""
        self.registry.remove_machine_state(self.machine.id)
        log.info("removed machine %s from the registry", self.machine.id)
