"""Blocking waits of the lifecycle commands (fleet-reference 1.5), as a library helper, not command code.

I/O (polls the registry) with injected ``clock`` and ``sleep`` so tests need not wait. One attempt polls every
250 ms for up to 2 s; ``--block-attempts N`` allows N attempts (about 2N seconds), 0 waits forever, ``--no-block``
looks once and never waits. The state compared is the unit's CurrentState (its DesiredState for global units,
which have no CurrentState). While a unit the engine could not place is awaited, its scheduling reason (fleetpy's
``reasons`` key, written by the engine) is shown once per change instead of hanging silently, and a timeout
names it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetpy.client.api import FleetClient
from fleetpy.client.report import Reporter
from fleetpy.errors import UsageError
from fleetpy.model.records import JobState, ScheduledUnit, Unit, UnitState

POLL_SECONDS = 0.25
ATTEMPT_SECONDS = 2.0
BULK_THRESHOLD = 3
"""Above this many pending units one poll reads the job and states trees (2 requests) instead of per-unit keys."""


@dataclass(frozen=True, slots=True)
class Blocking:
    """``attempts``: -1 = do not block (``--no-block``), 0 = forever, N = N attempts of 2 s."""

    attempts: int = 0

    @classmethod
    def of(cls, *, no_block: bool = False, attempts: int = 0) -> Blocking:
        if attempts < 0:
            raise UsageError(f"--block-attempts must be 0 (no limit) or more, got {attempts}")
        return cls(-1 if no_block else attempts)

    @property
    def no_block(self) -> bool:
        return self.attempts < 0

    @property
    def forever(self) -> bool:
        return self.attempts == 0


NO_BLOCK = Blocking(-1)


@dataclass(frozen=True, slots=True)
class _Seen:
    state: str  # the compared state ("" when the unit is gone)
    shown: str  # what fleet prints after the name: CurrentState, "" for global units
    machine_id: str | None


def go_list(names: Sequence[str]) -> str:
    """Go's ``%v`` of a []string: ``[a b]``."""
    return "[" + " ".join(names) + "]"


class Waiter:
    def __init__(self, client: FleetClient, report: Reporter, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, poll: float = POLL_SECONDS,
                 attempt: float = ATTEMPT_SECONDS) -> None:
        self.client = client
        self.report = report
        self.clock = clock
        self.sleep = sleep
        self.poll = poll
        self.attempt = attempt

    def _deadline(self, blocking: Blocking) -> float | None:
        if blocking.no_block:
            return self.clock()
        return None if blocking.forever else self.clock() + blocking.attempts * self.attempt

    # -- job states -------------------------------------------------------------------------------------
    def unit_states(self, units: Sequence[Unit], state: JobState, blocking: Blocking) -> list[str]:
        """Wait until every unit reports ``state``; print ``Unit <name> <state>[ on <machine>]`` for each as it
        gets there. Returns one error per unit that did not (empty when all did, or with ``--no-block``)."""
        pending = {u.name: u for u in units}
        deadline = self._deadline(blocking)
        shown_reasons: dict[str, str] = {}
        while pending:
            seen = self._observe(list(pending.values()))
            for name in list(pending):
                if seen[name].state == state.value:
                    self.report.out(self._line(name, seen[name]))
                    del pending[name]
            if not pending or blocking.no_block:
                return []
            waiting = [n for n in pending if not pending[n].is_global and seen[n].machine_id is None]
            reasons = self.client.reasons() if waiting and state is not JobState.INACTIVE else {}
            for name in waiting:
                reason = reasons.get(name, "")
                if reason and shown_reasons.get(name) != reason:
                    shown_reasons[name] = reason
                    self.report.err(f"Waiting for unit {name} to report state {state}: {reason}")
            if deadline is not None and self.clock() >= deadline:
                return [self._timeout(name, state, reasons.get(name, "")) for name in pending]
            self.sleep(self.poll)
        return []

    @staticmethod
    def _timeout(name: str, state: JobState, reason: str) -> str:
        message = f"timed out waiting for unit {name} to report state {state}"
        return f"{message} (not scheduled: {reason})" if reason else message

    def _observe(self, units: Sequence[Unit]) -> dict[str, _Seen]:
        if len(units) > BULK_THRESHOLD:  # two or three requests whatever the number of units
            schedule = self.client.schedule()
            targets = {u.name: u.target_state for u in self.client.units()} if any(u.is_global for u in units) \
                else {}
            out = {}
            for u in units:
                if u.is_global:
                    target = targets.get(u.name)
                    out[u.name] = _Seen(target.value if target else "", "", None)
                else:
                    out[u.name] = self._seen(schedule.get(u.name))
            return out
        result = {}
        for u in units:
            if u.is_global:
                job = self.client.job(u.name)
                result[u.name] = _Seen(job.target_state.value if job else "", "", None)
            else:
                result[u.name] = self._seen(self.client.scheduled_unit(u.name))
        return result

    @staticmethod
    def _seen(sched: ScheduledUnit | None) -> _Seen:
        if sched is None:
            return _Seen("", "", None)
        return _Seen(sched.current_state.value, sched.current_state.value, sched.target_machine)

    def _line(self, name: str, seen: _Seen) -> str:
        line = f"Unit {name} {seen.shown}"
        if seen.machine_id:
            try:
                machine = self.client.machine_map().get(seen.machine_id)
            except Exception:  # fleet's cachedMachineState ignores lookup errors: the line loses its legend
                machine = None
            if machine is not None:
                line = f"{line} on {machine.legend()}"
        return line

    # -- systemd states ---------------------------------------------------------------------------------
    def systemd_active(self, names: Sequence[str], blocking: Blocking) -> list[str]:
        """After ``start``: wait until systemd reports each unit ``loaded``/``active``. Waiting forever stops for
        a unit that stays ``failed`` for a whole attempt (it will not become active by itself)."""
        if blocking.no_block:
            return []
        pending = list(dict.fromkeys(names))
        started = self.clock()
        deadline = self._deadline(blocking)
        failed_since: dict[str, float] = {}
        last: dict[str, UnitState] = {}
        errors: list[str] = []
        while pending:
            now = self.clock()
            for name in list(pending):
                states = self.client.unit_states(unit_name=name)
                if any(s.load_state == "loaded" and s.active_state == "active" for s in states):
                    pending.remove(name)
                    continue
                if states:
                    last[name] = states[0]
                if any(s.active_state == "failed" for s in states):
                    failed_since.setdefault(name, now)
                    if blocking.forever and now - failed_since[name] >= self.attempt:
                        errors.append(self._not_active(name, now - started, last.get(name)))
                        pending.remove(name)
                else:
                    failed_since.pop(name, None)
            if not pending:
                break
            if deadline is not None and self.clock() >= deadline:
                errors.extend(self._not_active(n, self.clock() - started, last.get(n)) for n in pending)
                break
            self.sleep(self.poll)
        return errors

    def _not_active(self, name: str, elapsed: float, state: UnitState | None) -> str:
        window = max(self.attempt, round(elapsed / self.attempt) * self.attempt)
        message = f"Failed to find an active unit {name} within {window:g}s"
        if state is not None:
            message += f", state: {state.load_state}/{state.active_state}/{state.sub_state}"
        return message

    def global_stopped(self, name: str, blocking: Blocking) -> list[str]:
        """Restart of a global unit: wait until no machine reports it ``active`` any more."""
        if blocking.no_block:
            return []
        deadline = self._deadline(blocking)
        while True:
            active = [s.machine_id for s in self.client.unit_states(unit_name=name) if s.active_state == "active"]
            if not active:
                return []
            if deadline is not None and self.clock() >= deadline:
                return [f"timed out waiting for global unit {name} to stop on {go_list(active)}"]
            self.sleep(self.poll)
