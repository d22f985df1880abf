"""Blocking waits on a FakeClock: attempt arithmetic, --no-block, reasons while waiting, bulk polling, systemd."""

from __future__ import annotations

import pytest

from fleetpy.client.wait import ATTEMPT_SECONDS, POLL_SECONDS, Blocking
from fleetpy.errors import UsageError
from fleetpy.model.records import JobState, Unit, UnitState
from tests.client.helpers import GLOBAL, M1, M2, PLAIN, Env


def unit(env: Env, name: str, state: JobState = JobState.LAUNCHED, uf: object = PLAIN) -> Unit:
    u = Unit(name, uf, state)  # type: ignore[arg-type]
    env.registry.create_unit(u)
    return u


@pytest.mark.parametrize(("attempts", "polls"), [(1, 8), (2, 16), (3, 24)])
def test_n_attempts_poll_every_250ms_for_2s_each(attempts: int, polls: int) -> None:
    env = Env()
    u = unit(env, "a.service")
    errors = env.waiter.unit_states([u], JobState.LAUNCHED, Blocking.of(attempts=attempts))
    assert errors == ["timed out waiting for unit a.service to report state launched"]
    assert env.sleeps == [POLL_SECONDS] * polls
    assert sum(env.sleeps) == attempts * ATTEMPT_SECONDS


def test_forever_waits_until_the_state_is_reached() -> None:
    env = Env()
    u = unit(env, "a.service")
    env.on_sleep = lambda n: env.run_unit("a.service") if n == 100 else None
    assert env.waiter.unit_states([u], JobState.LAUNCHED, Blocking()) == []
    assert len(env.sleeps) == 100
    assert env.report.stdout == ["Unit a.service launched on c7ed6caf.../10.0.0.1"]


def test_no_block_looks_once() -> None:
    env = Env()
    done, pending = unit(env, "done.service", JobState.INACTIVE), unit(env, "pending.service")
    assert env.waiter.unit_states([done, pending], JobState.INACTIVE, Blocking.of(no_block=True)) == []
    assert env.sleeps == []
    assert env.report.stdout == ["Unit done.service inactive", "Unit pending.service inactive"]
    assert env.waiter.unit_states([pending], JobState.LAUNCHED, Blocking.of(no_block=True)) == []
    assert env.report.stdout[2:] == []


def test_loaded_and_unknown_machine_legends() -> None:
    env = Env()
    a, b = unit(env, "a.service", JobState.LOADED), unit(env, "b.service", JobState.LOADED)
    env.run_unit("a.service", launched=False)
    env.run_unit("b.service", machine=M2, launched=False)  # M2 is not a registered machine
    assert env.waiter.unit_states([a, b], JobState.LOADED, Blocking.of(attempts=1)) == []
    assert env.report.stdout == ["Unit a.service loaded on c7ed6caf.../10.0.0.1", "Unit b.service loaded"]


def test_global_units_compare_the_desired_state() -> None:
    env = Env()
    g = unit(env, "g.service", JobState.INACTIVE, GLOBAL)
    assert env.waiter.unit_states([g], JobState.INACTIVE, Blocking()) == []
    assert env.report.stdout == ["Unit g.service "]  # fleet prints the (empty) CurrentState of a global unit


def test_reason_shown_once_per_change_and_named_on_timeout() -> None:
    env = Env()
    u = unit(env, "nowhere.service")

    def engine(n: int) -> None:
        if n == 1:
            env.registry.set_reason("nowhere.service", "no machine has role=db")
        if n == 5:
            env.registry.set_reason("nowhere.service", "conflicts with web@1.service on every machine")

    env.on_sleep = engine
    errors = env.waiter.unit_states([u], JobState.LAUNCHED, Blocking.of(attempts=1))
    assert env.report.stderr == [
        "Waiting for unit nowhere.service to report state launched: no machine has role=db",
        "Waiting for unit nowhere.service to report state launched: conflicts with web@1.service on every machine",
    ]
    assert errors == ["timed out waiting for unit nowhere.service to report state launched (not scheduled: "
                      "conflicts with web@1.service on every machine)"]


def test_many_units_are_polled_in_bulk_with_the_same_result() -> None:
    env = Env()
    units = [unit(env, f"u{i}.service") for i in range(6)] + [unit(env, "g.service", uf=GLOBAL)]
    for u in units[:4]:
        env.run_unit(u.name)
    errors = env.waiter.unit_states(units, JobState.LAUNCHED, Blocking.of(attempts=1))
    assert env.report.stdout == [f"Unit u{i}.service launched on c7ed6caf.../10.0.0.1" for i in range(4)] + [
        "Unit g.service "]
    assert errors == [f"timed out waiting for unit u{i}.service to report state launched" for i in (4, 5)]


def test_destroyed_unit_keeps_waiting_until_timeout() -> None:
    env = Env()
    u = unit(env, "gone.service")
    env.registry.destroy_unit("gone.service")
    assert env.waiter.unit_states([u], JobState.LAUNCHED, Blocking.of(attempts=1)) == [
        "timed out waiting for unit gone.service to report state launched"]


def test_systemd_active() -> None:
    env = Env()
    unit(env, "a.service")
    env.run_unit("a.service")
    assert env.waiter.systemd_active(["a.service"], Blocking()) == []
    assert env.waiter.systemd_active(["a.service"], Blocking.of(no_block=True)) == []


def test_systemd_failed_unit_gives_up_after_one_attempt_when_waiting_forever() -> None:
    env = Env()
    unit(env, "f.service")
    env.run_unit("f.service", active="failed")
    errors = env.waiter.systemd_active(["f.service"], Blocking())
    assert errors == ["Failed to find an active unit f.service within 2s, state: loaded/failed/running"]
    assert sum(env.sleeps) == ATTEMPT_SECONDS


def test_systemd_activating_unit_times_out_with_attempts() -> None:
    env = Env()
    unit(env, "slow.service")
    env.run_unit("slow.service", active="activating")
    errors = env.waiter.systemd_active(["slow.service"], Blocking.of(attempts=2))
    assert errors == ["Failed to find an active unit slow.service within 4s, state: loaded/activating/running"]


def test_global_stopped() -> None:
    env = Env()
    g = unit(env, "g.service", uf=GLOBAL)
    env.registry.save_unit_state(UnitState(g.name, M1, "loaded", "active", "running", g.hash), ttl=10**6)
    env.on_sleep = lambda n: env.registry.save_unit_state(
        UnitState(g.name, M1, "loaded", "inactive", "dead", g.hash), ttl=10**6) if n == 3 else None
    assert env.waiter.global_stopped("g.service", Blocking()) == []
    env.on_sleep = None
    env.registry.save_unit_state(UnitState(g.name, M1, "loaded", "active", "running", g.hash), ttl=10**6)
    assert env.waiter.global_stopped("g.service", Blocking.of(attempts=1)) == [
        f"timed out waiting for global unit g.service to stop on [{M1}]"]


def test_negative_attempts_are_a_usage_error() -> None:
    with pytest.raises(UsageError):
        Blocking.of(attempts=-1)
