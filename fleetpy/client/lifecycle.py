"""The lifecycle verbs (submit, load, start, stop, unload, destroy, restart) as fleetctl 1.0 runs them.

I/O through ``FleetClient``, progress through a ``Reporter``, waits through ``Waiter``. Failures raise errors from
``fleetpy.client.errors`` carrying fleet's words; the CLI maps them to exit codes. Deliberate differences from
fleetctl 1.0, each a fix of a fleet bug: every argument is validated before the first write; ``start --no-block``
prints ``Triggered unit X start`` once (fleet printed it twice); ``stop`` and ``restart`` refuse an inactive unit
before changing any unit; ``restart`` really waits for ``loaded`` before setting ``launched`` (fleet waited for
``launched`` twice) and refuses inactive units with exit 1 (fleet exited 0); ``start``/``load`` create a new unit
with its target state at once (fleetctl wrote ``inactive``, waited, then wrote the state: one write per unit
more), printing fleetctl's ``Unit X inactive`` line all the same (true when written: no machine has it yet).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetpy.client.api import FleetClient
from fleetpy.client.errors import UnitNotFound, UnitStateError, WaitFailed
from fleetpy.client.report import Reporter
from fleetpy.client.units import create_units, find_units, resolve_units, unit_names
from fleetpy.client.wait import Blocking, Waiter, go_list
from fleetpy.errors import UsageError
from fleetpy.model.names import UnitNameInfo
from fleetpy.model.records import JobState, Unit
from fleetpy.parallel import pmap

NOT_FOUND = "Units not found in registry"
NO_UNITS = "No units given"
WAIT = Blocking()


class Lifecycle:
    def __init__(self, client: FleetClient, report: Reporter, waiter: Waiter | None = None) -> None:
        self.client = client
        self.report = report
        self.waiter = waiter or Waiter(client, report)

    # -- creation ---------------------------------------------------------------------------------------
    def _create(self, args: Sequence[str], *, command: str, replace: bool, blocking: Blocking,
                state: JobState = JobState.INACTIVE) -> list[Unit]:
        """lazyCreateUnits: resolve and validate everything, write what is new (with target ``state``: the
        command's own state, one write less than fleetctl's inactive-then-``state``), wait for what was written
        inactive (replacements) to be inactive."""
        resolved = resolve_units(self.client, args, command=command, replace=replace, report=self.report)
        if command in ("load", "start"):
            for item in resolved:
                if UnitNameInfo.of(item.name).is_template:
                    raise UsageError(f'cannot activate template "{item.name}"')
        created = create_units(self.client, resolved, report=self.report, state=state)
        replaced = [u for u in created if u.target_state is JobState.INACTIVE]
        for unit in created:
            if unit.target_state is not JobState.INACTIVE:  # new: no machine has it yet, so it is inactive
                self.report.out(f"Unit {unit.name} {'' if unit.is_global else JobState.INACTIVE}")  # fleet's quirk
        errors = self.waiter.unit_states(replaced, JobState.INACTIVE, blocking)
        if errors:
            raise WaitFailed(errors, summary="Error creating units: One or more errors creating units",
                             prefix="Error waiting on unit creation")
        return created

    def _set_targets(self, names: Sequence[str], state: JobState, known: Sequence[Unit] = ()) -> list[Unit]:
        """setTargetStateOfUnits: the units whose target this command changes (argument order); units already
        at ``state`` are skipped, except the ones in ``known``: written by this command with ``state`` already,
        they count as changed without another write. Other units are read, ``known`` ones are not."""
        fresh = {u.name: u for u in known}
        read = self.client.units_named([name for name in names if name not in fresh])
        units = [fresh[name] if name in fresh else read[name] for name in names]
        for name, unit in zip(names, units, strict=True):
            if unit is None:
                raise UnitNotFound(f"unable to find unit {name}")
        changing = [u for u in units if u is not None and (u.target_state is not state or u.name in fresh)]
        self.client.set_target_states([u.name for u in changing if fresh.get(u.name, u).target_state is not state],
                                      state)
        return changing

    def submit(self, args: Sequence[str], *, replace: bool = False) -> None:
        if not args:
            self.report.err(NO_UNITS)
            return
        self._create(args, command="submit", replace=replace, blocking=WAIT)

    def load(self, args: Sequence[str], *, replace: bool = False, blocking: Blocking = WAIT) -> None:
        self._activate(args, JobState.LOADED, "load", replace=replace, blocking=blocking)

    def start(self, args: Sequence[str], *, replace: bool = False, blocking: Blocking = WAIT) -> None:
        starting = self._activate(args, JobState.LAUNCHED, "start", replace=replace, blocking=blocking)
        errors = self.waiter.systemd_active([u.name for u in starting], blocking)
        if errors:
            raise WaitFailed(errors)

    def _activate(self, args: Sequence[str], state: JobState, verb: str, *, replace: bool,
                  blocking: Blocking) -> list[Unit]:
        if not args:
            self.report.err(NO_UNITS)
            return []
        created = self._create(args, command=verb, replace=replace, blocking=blocking, state=state)
        triggered = self._set_targets(unit_names(args), state, created)
        waiting = []
        for unit in triggered:
            if unit.is_global:
                self.report.out(f"Triggered global unit {unit.name} {verb}")
            else:
                waiting.append(unit)
        if blocking.no_block:
            for unit in waiting:
                self.report.out(f"Triggered unit {unit.name} {verb}")
            return waiting
        errors = self.waiter.unit_states(waiting, state, blocking)
        if errors:
            raise WaitFailed(errors)
        return waiting

    # -- state changes of existing units ----------------------------------------------------------------
    def _current(self, unit: Unit) -> JobState:
        sched = self.client.scheduled_unit(unit.name)
        return sched.current_state if sched is not None else JobState.INACTIVE

    def stop(self, args: Sequence[str], *, blocking: Blocking = WAIT) -> None:
        if not args:
            self.report.err(NO_UNITS)
            return
        units = find_units(self.client, args)
        if not units:
            self.report.err(NOT_FOUND)
            return
        local = [u for u in units if not u.is_global]
        current = dict(zip([u.name for u in local], pmap(self._current, local), strict=True))
        for unit in units:
            if current.get(unit.name) is JobState.INACTIVE:
                raise UnitStateError(f"Unable to stop unit {unit.name} in state {JobState.INACTIVE}")
        stopping = []
        changing = [u for u in units if current.get(u.name) is not JobState.LOADED]
        self.client.set_target_states([u.name for u in changing], JobState.LOADED)
        for unit in changing:
            if unit.is_global:
                self.report.out(f"Triggered global unit {unit.name} stop")
            else:
                stopping.append(unit)
        self._wait_or_trigger(stopping, JobState.LOADED, "stop", blocking)
        self.report.err(f"Successfully stopped units {go_list([u.name for u in stopping])}.")

    def unload(self, args: Sequence[str], *, blocking: Blocking = WAIT) -> None:
        if not args:
            self.report.err(NO_UNITS)
            return
        units = find_units(self.client, args)
        if not units:
            self.report.err(NOT_FOUND)
            return
        waiting = []
        changing = [u for u in units if u.is_global or u.target_state is not JobState.INACTIVE]
        self.client.set_target_states([u.name for u in changing], JobState.INACTIVE)
        for unit in changing:
            if unit.is_global:
                self.report.out(f"Triggered global unit {unit.name} unload")
            else:
                waiting.append(unit)
        self._wait_or_trigger(waiting, JobState.INACTIVE, "unload", blocking)
        self.report.err(f"Successfully unloaded units {go_list([u.name for u in waiting])}.")

    def _wait_or_trigger(self, units: list[Unit], state: JobState, verb: str, blocking: Blocking) -> None:
        """tryWaitForUnitStates: with --no-block say what was triggered, else wait (summary on failure)."""
        if blocking.no_block:
            for unit in units:
                self.report.out(f"Triggered unit {unit.name} {verb}")
            return
        errors = self.waiter.unit_states(units, state, blocking)
        if errors:
            raise WaitFailed(errors, summary=f"Failed to {verb} units {go_list([u.name for u in units])}. exit == 1.")

    def destroy(self, args: Sequence[str]) -> None:
        """Delete each named unit (argument order). No wait: deletion is immediate in the registry."""
        if not args:
            self.report.err(NO_UNITS)
            return
        units = find_units(self.client, args)
        if not units:
            self.report.err(NOT_FOUND)
            return
        deleted = pmap(lambda u: self.client.destroy_unit(u.name), units)
        for unit, done in zip(units, deleted, strict=True):
            if done:
                self.report.out(f"Destroyed {unit.name}")

    def restart(self, args: Sequence[str], *, blocking: Blocking = WAIT) -> None:
        """fleet 1.0's restart: loaded -> launched; launched -> loaded, then launched, unit by unit. Global units
        go through the registry too (target loaded, wait until no machine reports them active, then launched)."""
        if not args:
            self.report.err(NO_UNITS)
            return
        if blocking.no_block:
            raise UsageError("restart always waits: use --block-attempts to bound the wait")
        units = find_units(self.client, args)
        self._create(args, command="restart", replace=False, blocking=blocking)
        current = {u.name: self._current(u) for u in units if not u.is_global}
        for unit in units:
            if current.get(unit.name) is JobState.INACTIVE:
                raise UnitStateError(f"Unable to restart unit {unit.name} in state {JobState.INACTIVE}")
        for unit in units:
            if unit.is_global:
                self.client.set_target_state(unit.name, JobState.LOADED)
                errors = self.waiter.global_stopped(unit.name, blocking)
                self.client.set_target_state(unit.name, JobState.LAUNCHED)
                if errors:
                    raise WaitFailed(errors)
                self.report.out(f"Triggered global unit {unit.name} restart")
                continue
            if current[unit.name] is JobState.LAUNCHED:
                self._set_and_wait(unit, JobState.LOADED, blocking)
            self._set_and_wait(unit, JobState.LAUNCHED, blocking)

    def _set_and_wait(self, unit: Unit, state: JobState, blocking: Blocking) -> None:
        self.client.set_target_state(unit.name, state)
        errors = self.waiter.unit_states([unit], state, blocking)
        if errors:
            raise WaitFailed(errors)
