"""The one loop primitive: run a reconcile at start, then on every wake-up (a watch event) or periodic tick.

I/O-free apart from waiting. Wake-ups are coalesced: ten events while a pass runs cause one more pass, not ten.
``Trigger`` is what watchers call; ``run_periodic`` is what components run in their thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("fleetpy.loop")


class Trigger:
    """A coalescing wake-up flag shared between a watcher and a loop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def fire(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """True when fired since the last wait that returned True (the flag is then cleared). A wait that times
        out leaves the flag alone: a fire just after the timeout, before this returns, wakes the next wait (it
        used to be cleared, and an agent's start then waited for the next 5 s tick)."""
        fired = self._event.wait(timeout)
        if fired:
            self._event.clear()
        return fired


def run_periodic(
    fn: Callable[[], object],
    *,
    interval: float,
    stop: threading.Event,
    trigger: Trigger | None = None,
    name: str = "loop",
    min_gap: float = 0.0,
) -> None:
    """Call ``fn`` now, then whenever ``trigger`` fires or ``interval`` passes, until ``stop`` is set.

    An exception in ``fn`` is logged once per distinct message and the loop goes on (the next pass retries).
    ``min_gap`` spaces passes out under a storm of events (batching many changes into one pass). Between passes
    the loop sleeps until one of those happens and no sooner: ``stop`` fires the trigger (from a thread of its
    own that only waits), where the loop used to look at ``stop`` every 0.1 s. Ten wake-ups a second of every
    loop of every agent were an idle fleetpyd's main cost, and a simulation process runs 250 agents."""
    trigger = trigger or Trigger()
    when_set(stop, trigger.fire, name=f"{name}-stop")
    last_error = ""
    while not stop.is_set():
        started = time.monotonic()
        try:
            fn()
            if last_error:
                log.info("%s: recovered", name)
            last_error = ""
        except Exception as err:
            message = f"{type(err).__name__}: {err}"
            if message != last_error:
                log.warning("%s: pass failed: %s", name, message)
            last_error = message
        if stop.is_set():
            break
        if min_gap > 0:
            remaining = min_gap - (time.monotonic() - started)
            if remaining > 0 and stop.wait(remaining):
                break
        _wait(trigger, interval, stop)


def when_set(event: threading.Event, action: Callable[[], object], *, name: str) -> None:
    """Call ``action`` once ``event`` is set, from a thread that only waits for it (no wake-up before)."""
    def wait_then() -> None:
        event.wait()
        action()
    threading.Thread(target=wait_then, name=name, daemon=True).start()


def _wait(trigger: Trigger, interval: float, stop: threading.Event) -> None:
    """Sleep until the trigger fires (``stop`` fires it too) or ``interval`` passes."""
    deadline = time.monotonic() + interval
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or trigger.wait(remaining):
            return
