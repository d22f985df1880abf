"""The API's entities (fleet ``schema/v1-gen.go``) to and from the registry's records.

Pure. Field order is Go's struct order (alphabetical in the generated schema), every field is ``omitempty``, and
bodies are encoded like Go's encoding/json (``codec.go_json``) so fleet clients see byte-identical JSON. The
decoders (``*_from_json``) are shared by the server (PUT bodies) and the HTTP client (responses); they raise
``ValueError`` with a Go-like message on a wrong type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetpy.model.records import JobState, MachineState, ScheduledUnit, Unit, UnitState
from fleetpy.model.unit import UnitFile, UnitOption
from fleetpy.registry.codec import go_json

JsonObject = dict[str, Any]


def dumps(value: Any) -> bytes:
    return go_json(value).encode("utf-8")


def _omitempty(pairs: list[tuple[str, Any]]) -> JsonObject:
    return {k: v for k, v in pairs if v not in ("", None, [], {})}


# -- encoding (server side) --------------------------------------------------------------------------------
def option_json(option: UnitOption) -> JsonObject:
    return _omitempty([("name", option.name), ("section", option.section), ("value", option.value)])


def unit_json(unit: Unit, scheduled: ScheduledUnit | None) -> JsonObject:
    """fleet's MapUnitToSchemaUnit: currentState and machineID come from the schedule when there is one."""
    current = scheduled.current_state.value if scheduled is not None else ""
    machine = (scheduled.target_machine or "") if scheduled is not None else ""
    return _omitempty([
        ("currentState", current),
        ("desiredState", unit.target_state.value),
        ("machineID", machine),
        ("name", unit.name),
        ("options", [option_json(o) for o in unit.unit_file.options]),
    ])


def unit_state_json(state: UnitState) -> JsonObject:
    return _omitempty([
        ("hash", state.unit_hash),
        ("machineID", state.machine_id),
        ("name", state.name),
        ("systemdActiveState", state.active_state),
        ("systemdLoadState", state.load_state),
        ("systemdSubState", state.sub_state),
    ])


def machine_json(machine: MachineState) -> JsonObject:
    return _omitempty([
        ("id", machine.id),
        ("metadata", dict(sorted(machine.metadata.items()))),
        ("primaryIP", machine.public_ip),
    ])


def page_json(key: str, items: list[JsonObject], next_token: str | None) -> JsonObject:
    """``{"machines": [...], "nextPageToken": ...}`` in the generated struct's field order, empty parts omitted."""
    pairs: list[tuple[str, Any]] = [(key, items), ("nextPageToken", next_token or "")]
    if key in ("units", "states"):
        pairs.reverse()  # UnitPage and UnitStatePage declare NextPageToken first
    return _omitempty(pairs)


# -- decoding (PUT bodies on the server, responses in the client) -----------------------------------------
def _field(obj: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    value = obj.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise ValueError(f"json: cannot unmarshal {type(value).__name__} into Go struct field {what}.{key}")
    return value


def object_of(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"json: cannot unmarshal {type(value).__name__} into Go value of type {what}")
    return value


def options_from_json(value: Any) -> tuple[UnitOption, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"json: cannot unmarshal {type(value).__name__} into Go struct field Unit.options")
    out = []
    for item in value:
        obj = object_of(item, "schema.UnitOption")
        out.append(UnitOption(
            section=_field(obj, "section", str, "UnitOption"),
            name=_field(obj, "name", str, "UnitOption"),
            value=_field(obj, "value", str, "UnitOption"),
        ))
    return tuple(out)


def unit_fields(value: Any) -> JsonObject:
    """A Unit body's fields, type-checked: name, options (tuple of UnitOption), desiredState, currentState,
    machineID. Unknown fields are ignored, as Go does."""
    obj = object_of(value, "schema.Unit")
    return {
        "name": _field(obj, "name", str, "Unit"),
        "options": options_from_json(obj.get("options")),
        "desiredState": _field(obj, "desiredState", str, "Unit"),
        "currentState": _field(obj, "currentState", str, "Unit"),
        "machineID": _field(obj, "machineID", str, "Unit"),
    }


def job_state(value: str, default: JobState | None = None) -> JobState | None:
    """``"launched"`` -> JobState.LAUNCHED; ``""`` -> ``default``; anything else -> ValueError."""
    if not value:
        return default
    try:
        return JobState(value)
    except ValueError:
        raise ValueError(f"invalid job state: {value!r}") from None


def unit_from_json(value: Any) -> tuple[Unit, ScheduledUnit]:
    fields = unit_fields(value)
    unit = Unit(fields["name"], UnitFile(fields["options"]),
                job_state(fields["desiredState"], JobState.INACTIVE) or JobState.INACTIVE)
    current = job_state(fields["currentState"], JobState.INACTIVE) or JobState.INACTIVE
    return unit, ScheduledUnit(unit.name, fields["machineID"] or None, current)


def unit_state_from_json(value: Any) -> UnitState:
    obj = object_of(value, "schema.UnitState")
    return UnitState(
        name=_field(obj, "name", str, "UnitState"),
        machine_id=_field(obj, "machineID", str, "UnitState"),
        load_state=_field(obj, "systemdLoadState", str, "UnitState"),
        active_state=_field(obj, "systemdActiveState", str, "UnitState"),
        sub_state=_field(obj, "systemdSubState", str, "UnitState"),
        unit_hash=_field(obj, "hash", str, "UnitState"),
    )


def machine_from_json(value: Any) -> MachineState:
    obj = object_of(value, "schema.Machine")
    meta = object_of(obj.get("metadata"), "map[string]string")
    return MachineState(
        id=_field(obj, "id", str, "Machine"),
        public_ip=_field(obj, "primaryIP", str, "Machine"),
        metadata={str(k): str(v) for k, v in meta.items()},
    )
