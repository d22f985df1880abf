"""``Trigger`` and ``run_periodic``: coalesced wake-ups, none lost."""

from __future__ import annotations

import threading
import time

from fleetpy.loop import Trigger, run_periodic


class _FiredAtTheTimeout(threading.Event):
    """An Event whose first timed-out wait sees a fire land right after the timeout, before the caller goes on."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def wait(self, timeout: float | None = None) -> bool:
        fired = super().wait(timeout)
        if not fired and not self.raced:
            self.raced = True
            self.set()  # another thread's fire(), between the timeout and what the waiter does next
        return fired


def test_a_fire_right_after_a_timed_out_wait_wakes_the_next_wait() -> None:
    trigger = Trigger()
    trigger._event = _FiredAtTheTimeout()
    assert trigger.wait(0.01) is False
    assert trigger.wait(0.0) is True  # not lost
    assert trigger.wait(0.0) is False  # and cleared once taken


def test_fires_while_a_pass_runs_cost_one_more_pass() -> None:
    trigger = Trigger()
    stop = threading.Event()
    passes: list[float] = []

    def work() -> None:
        passes.append(time.monotonic())
        if len(passes) == 1:
            for _ in range(10):
                trigger.fire()
        if len(passes) >= 2:
            stop.set()

    started = time.monotonic()
    run_periodic(work, interval=5.0, stop=stop, trigger=trigger)
    assert len(passes) == 2 and passes[1] - started < 1.0  # woken at once, not at the 5 s tick
