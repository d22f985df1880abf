"""The Registry over both stores: fleet's records, derived states, CAS semantics and byte-exact JSON."""

from __future__ import annotations

import json

import pytest

from fleetpy.errors import CASConflict, LeaseLost
from fleetpy.model.records import JobState, MachineState, Unit, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry

HELLO = UnitFile.parse("[Service]\nExecStart=/bin/sleep 100\n")
M1 = "c7ed6cafe52543569dbc19ca848b3b1d"
M2 = "07c7d51f3c55453792355a6c01d3e3b0"


def _unit(name: str = "hello.service", state: JobState = JobState.LAUNCHED, uf: UnitFile = HELLO) -> Unit:
    return Unit(name, uf, state)


def test_units_roundtrip_sorted(registry: Registry) -> None:
    for name in ("b.service", "a.service", "c@1.service"):
        registry.create_unit(_unit(name))
    assert [u.name for u in registry.units()] == ["a.service", "b.service", "c@1.service"]
    one = registry.unit("b.service")
    assert one is not None and one.hash == HELLO.hash and one.target_state is JobState.LAUNCHED
    assert registry.unit("missing.service") is None


def test_create_units_writes_what_create_unit_writes(registry: Registry) -> None:
    other = UnitFile.parse("[Service]\nExecStart=/bin/sleep 200\n")
    units = [_unit(f"s@{i}.service") for i in range(5)] + [_unit("o.service", JobState.LOADED, other)]
    registry.create_units(units)
    registry.create_units([])
    assert registry.units() == sorted(units, key=lambda u: u.name)
    bodies = registry.store.list(registry.keys.tree(Tree.UNIT)).nodes
    assert len(bodies) == 2  # each body once


def test_set_target_states(registry: Registry) -> None:
    registry.create_units([_unit(f"s@{i}.service") for i in range(3)])
    registry.set_target_states(["s@0.service", "s@2.service"], JobState.INACTIVE)
    assert [u.target_state for u in registry.units()] == [JobState.INACTIVE, JobState.LAUNCHED, JobState.INACTIVE]


def test_byte_exact_values(registry: Registry) -> None:
    """The raw values are fleet's JSON shapes (fleet-reference.md section 3)."""
    registry.create_unit(_unit())
    registry.create_machine_state(MachineState(M1, "10.0.0.1", {"role": "db", "az": "b"}, "1.0.0"), ttl=30)
    registry.schedule_unit("hello.service", M1)
    registry.save_unit_state(UnitState("hello.service", M1, "loaded", "active", "running", HELLO.hash), ttl=30)
    registry.unit_heartbeat("hello.service", M1, ttl=30)
    registry.acquire_lease(M1, 1, ttl=10)
    registry.ensure_engine_version()
    keys, store = registry.keys, registry.store

    def raw(key: str) -> str | None:
        node = store.get(key)
        return node.value if node else None

    assert raw(keys.job_object("hello.service")) == (
        '{"Name":"hello.service","UnitHash":[28,111,182,243,104,75,175,176,193,115,216,184,185,87,206,255,3,17,'
        '128,193]}'
    )
    assert raw(keys.target_state("hello.service")) == "launched"
    assert raw(keys.target("hello.service")) == M1
    assert raw(keys.job_state("hello.service")) == M1
    assert raw(keys.unit_body(HELLO.hash)) == '{"Raw":"[Service]\\nExecStart=/bin/sleep 100\\n"}'
    state = ('{"loadState":"loaded","activeState":"active","subState":"running","machineState":{"ID":"'
             + M1 + '","PublicIP":"","Metadata":null,"Capabilities":null,"Version":""},"unitHash":"'
             + HELLO.hash + '"}')
    assert raw(keys.state("hello.service", M1)) == state
    assert raw(keys.legacy_state("hello.service")) == state
    assert raw(keys.machine_object(M1)) == (
        '{"ID":"' + M1 + '","PublicIP":"10.0.0.1","Metadata":{"az":"b","role":"db"},'
        '"Capabilities":{"DISABLE_ENGINE":false,"GRPC":false},"Version":"1.0.0"}'
    )
    assert raw(keys.lease) == '{"MachineID":"' + M1 + '","Version":1}'
    assert raw(keys.engine_version) == "1"
    assert keys.job_object("x.service") == "/".join([keys.prefix.rstrip("/"), "job", "x.service", "object"])


def test_prefix_default_is_fleets() -> None:
    from fleetpy.registry.keys import Keys

    assert Keys().job_object("a.service") == "/_coreos.com/fleet/job/a.service/object"
    assert Keys("custom").lease == "/custom/lease/engine-leader"


@pytest.mark.parametrize(
    ("target", "state_on", "heartbeat", "expected"),
    [
        pytest.param(None, None, None, JobState.INACTIVE, id="unscheduled"),
        pytest.param(M1, None, None, JobState.INACTIVE, id="scheduled-no-state"),
        pytest.param(M1, M2, None, JobState.INACTIVE, id="state-elsewhere"),
        pytest.param(M1, M1, None, JobState.LOADED, id="loaded"),
        pytest.param(M1, M1, M1, JobState.LAUNCHED, id="launched"),
        pytest.param(M1, M1, M2, JobState.LOADED, id="heartbeat-from-other-machine"),
    ],
)
def test_current_state_is_derived_as_fleet_does(registry: Registry, target: str | None, state_on: str | None,
                                                heartbeat: str | None, expected: JobState) -> None:
    registry.create_unit(_unit())
    if target:
        registry.schedule_unit("hello.service", target)
    if state_on:
        registry.save_unit_state(UnitState("hello.service", state_on, "loaded", "active", "running", HELLO.hash), 30)
    if heartbeat:
        registry.unit_heartbeat("hello.service", heartbeat, 30)
    scheduled = registry.scheduled_unit("hello.service")
    assert scheduled is not None and scheduled.current_state is expected
    assert [s.current_state for s in registry.schedule()] == [expected]


def test_schedule_is_create_only_and_unschedule_compares(registry: Registry) -> None:
    registry.create_unit(_unit())
    registry.schedule_unit("hello.service", M1)
    with pytest.raises(CASConflict):
        registry.schedule_unit("hello.service", M2)
    registry.unschedule_unit("hello.service", M2)  # not ours to remove: no effect
    assert registry.job("hello.service").target == M1  # type: ignore[union-attr]
    registry.unschedule_unit("hello.service", M1)
    assert registry.job("hello.service").target is None  # type: ignore[union-attr]
    registry.unschedule_unit("hello.service", M1)  # idempotent


def test_destroy(registry: Registry) -> None:
    registry.create_unit(_unit())
    assert registry.destroy_unit("hello.service") is True
    assert registry.destroy_unit("hello.service") is False
    assert registry.units() == []
    assert registry.store.get(registry.keys.unit_body(HELLO.hash)) is not None  # bodies are never deleted (fleet)


def test_duplicate_machine_id_refused(registry: Registry) -> None:
    registry.create_machine_state(MachineState(M1, "10.0.0.1"), ttl=30)
    with pytest.raises(CASConflict):
        registry.create_machine_state(MachineState(M1, "10.0.0.2"), ttl=30)
    registry.set_machine_state(MachineState(M1, "10.0.0.3"), ttl=30)
    assert registry.machine(M1).public_ip == "10.0.0.3"  # type: ignore[union-attr]
    registry.remove_machine_state(M1)
    assert registry.machines() == []


def test_dynamic_metadata_overrides_and_tombstones(registry: Registry) -> None:
    registry.create_machine_state(MachineState(M1, "", {"role": "web", "az": "a"}), ttl=30)
    registry.set_machine_metadata(M1, "role", "db")
    registry.set_machine_metadata(M1, "az", "")
    registry.set_machine_metadata(M1, "disk", "ssd")
    assert dict(registry.machines()[0].metadata) == {"disk": "ssd", "role": "db"}


def test_unit_states_filters_and_order(registry: Registry) -> None:
    for name in ("b.service", "a.service"):
        for machine in (M1, M2):
            registry.save_unit_state(UnitState(name, machine, "loaded", "active", "running", HELLO.hash), 30)
    states = registry.unit_states()
    assert [(s.name, s.machine_id) for s in states] == [
        ("a.service", M2), ("a.service", M1), ("b.service", M2), ("b.service", M1)]
    assert [s.machine_id for s in registry.unit_states(unit_name="a.service")] == [M2, M1]
    assert {s.name for s in registry.unit_states(machine_id=M1)} == {"a.service", "b.service"}
    registry.remove_unit_state("a.service", M1)
    assert [s.machine_id for s in registry.unit_states(unit_name="a.service")] == [M2]
    registry.save_unit_state(UnitState("c.service", M1, "loaded", "active", "running", ""), 30)
    assert registry.unit_states(unit_name="c.service") == []  # no hash: not published (fleet)


def test_lease_acquire_renew_steal_release(registry: Registry) -> None:
    lease = registry.acquire_lease(M1, 1, ttl=10)
    assert lease is not None
    assert registry.acquire_lease(M2, 1, ttl=10) is None
    renewed = registry.renew_lease(lease, ttl=10)
    with pytest.raises(LeaseLost):
        registry.renew_lease(lease, ttl=10)  # the old index is stale
    stolen = registry.steal_lease(renewed, M2, 2, ttl=10)
    assert stolen is not None and registry.lease().machine_id == M2  # type: ignore[union-attr]
    registry.release_lease(renewed)  # not ours any more: no effect
    assert registry.lease() is not None
    registry.release_lease(stolen)
    assert registry.lease() is None


def test_legacy_lease_value_is_version_zero(registry: Registry) -> None:
    registry.store.set(registry.keys.lease, M1, ttl=10)
    lease = registry.lease()
    assert lease is not None and lease.machine_id == M1 and lease.version == 0


def test_engine_version_gate(registry: Registry) -> None:
    assert registry.ensure_engine_version(1) is True
    assert registry.engine_version() == 1
    registry.store.set(registry.keys.engine_version, "2")
    assert registry.ensure_engine_version(1) is False


def test_reasons(registry: Registry) -> None:
    registry.set_reason("a.service", "no machine has role=db")
    assert registry.reasons() == {"a.service": "no machine has role=db"}
    registry.clear_reason("a.service")
    assert registry.reasons() == {}


def test_unit_body_with_specials_is_go_json(registry: Registry) -> None:
    uf = UnitFile.parse('[Unit]\nDescription=a <b> & "c" é\n[Service]\nExecStart=/bin/sh -c "echo \\\\\n  hi"\n')
    registry.create_unit(_unit("s.service", uf=uf))
    raw = registry.store.get(registry.keys.unit_body(uf.hash)).value  # type: ignore[union-attr]
    assert "\\u003cb\\u003e \\u0026" in raw and "é" in raw
    assert json.loads(raw)["Raw"] == uf.contents
    again = registry.unit("s.service")
    assert again is not None and again.unit_file.contents == uf.contents
