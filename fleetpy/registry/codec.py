"""fleet's JSON values, byte for byte: encoders and decoders for every record the registry stores.

Pure. fleet wrote these with Go's encoding/json, so field order, compact separators, sorted map keys, ``null`` for
nil maps and Go's HTML escaping (``<`` -> ``\\u003c``) are reproduced (fleet-reference.md section 3).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from fleetpy.errors import RegistryError
from fleetpy.model.records import Lease, MachineState, UnitState
from fleetpy.model.unit import UnitFile

_GO_STRING_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                      "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                      "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_string(text: str) -> str:
    out = ['"']
    for ch in text:
        escaped = _GO_STRING_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """Serialize like Go's json.Marshal (as built for fleet): compact, UTF-8 kept, HTML-safe escapes, control
    characters other than \\n \\r \\t as \\u00XX, dict order kept (callers pass struct fields in Go order
    and sort maps themselves)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(str(k))}:{go_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    raise TypeError(f"go_json cannot encode {type(value).__name__}")


def _loads(raw: str, what: str) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError) as err:
        raise RegistryError(f"malformed {what} in registry: {err}") from err


# -- job/<unit>/object -------------------------------------------------------------------------------------
def encode_job_object(name: str, unit_hash: str) -> str:
    return go_json({"Name": name, "UnitHash": list(bytes.fromhex(unit_hash))})


@functools.lru_cache(maxsize=1 << 16)
def decode_job_object(raw: str) -> tuple[str, str]:
    """-> (name, hex hash). Accepts fleet's int array (and, leniently, a hex string). Memoised: agents and the
    engine decode every job object of the tree on every pass, and objects rarely change (half an agent's pass
    at 1,000 units was this JSON decoding)."""
    data = _loads(raw, "job object")
    if not isinstance(data, dict):
        raise RegistryError("malformed job object in registry: not an object")
    name = data.get("Name")
    raw_hash = data.get("UnitHash")
    if isinstance(raw_hash, list) and len(raw_hash) == 20 and all(isinstance(b, int) for b in raw_hash):
        unit_hash = bytes(raw_hash).hex()
    elif isinstance(raw_hash, str) and len(raw_hash) == 40:
        unit_hash = raw_hash.lower()
    else:
        raise RegistryError(f"malformed job object in registry: UnitHash of {name!r}")
    if not isinstance(name, str):
        raise RegistryError("malformed job object in registry: Name")
    return name, unit_hash


# -- unit/<hash> -------------------------------------------------------------------------------------------
def encode_unit_body(unit: UnitFile) -> str:
    return go_json({"Raw": unit.contents})


def decode_unit_body(raw: str) -> UnitFile:
    data = _loads(raw, "unit body")
    if not isinstance(data, dict) or not isinstance(data.get("Raw"), str):
        raise RegistryError("malformed unit body in registry")
    return UnitFile.parse(data["Raw"], source="registry unit body")


# -- machines/<id>/object ----------------------------------------------------------------------------------
def _machine_dict(machine: MachineState, *, full: bool) -> dict[str, Any]:
    if not full:
        return {"ID": machine.id, "PublicIP": "", "Metadata": None, "Capabilities": None, "Version": ""}
    return {
        "ID": machine.id,
        "PublicIP": machine.public_ip,
        "Metadata": dict(sorted(machine.metadata.items())),
        "Capabilities": {"DISABLE_ENGINE": machine.disable_engine, "GRPC": False},
        "Version": machine.version,
    }


def encode_machine(machine: MachineState) -> str:
    return go_json(_machine_dict(machine, full=True))


def decode_machine(raw: str, dynamic_metadata: Mapping[str, str] | None = None) -> MachineState:
    data = _loads(raw, "machine object")
    if not isinstance(data, dict) or not isinstance(data.get("ID"), str):
        raise RegistryError("malformed machine object in registry")
    meta = {str(k): str(v) for k, v in (data.get("Metadata") or {}).items()}
    for key, value in (dynamic_metadata or {}).items():
        if value == "":
            meta.pop(key, None)
        else:
            meta[key] = value
    caps = data.get("Capabilities") or {}
    return MachineState(
        id=data["ID"],
        public_ip=str(data.get("PublicIP") or ""),
        metadata=meta,
        version=str(data.get("Version") or ""),
        disable_engine=bool(caps.get("DISABLE_ENGINE", False)) if isinstance(caps, dict) else False,
    )


# -- states/<unit>/<machine> -------------------------------------------------------------------------------
def encode_unit_state(state: UnitState) -> str:
    machine = state.machine or MachineState(id=state.machine_id)
    return go_json(
        {
            "loadState": state.load_state,
            "activeState": state.active_state,
            "subState": state.sub_state,
            "machineState": _machine_dict(machine, full=state.machine is not None),
            "unitHash": state.unit_hash,
        }
    )


def decode_unit_state(name: str, machine_id: str, raw: str) -> UnitState:
    data = _loads(raw, "unit state")
    if not isinstance(data, dict):
        raise RegistryError("malformed unit state in registry")
    ms = data.get("machineState") or {}
    machine = None
    if isinstance(ms, dict) and ms.get("ID"):
        machine = MachineState(
            id=str(ms["ID"]),
            public_ip=str(ms.get("PublicIP") or ""),
            metadata={str(k): str(v) for k, v in (ms.get("Metadata") or {}).items()},
            version=str(ms.get("Version") or ""),
        )
    return UnitState(
        name=name,
        machine_id=machine_id,
        load_state=str(data.get("loadState", "")),
        active_state=str(data.get("activeState", "")),
        sub_state=str(data.get("subState", "")),
        unit_hash=str(data.get("unitHash", "")),
        machine=machine,
    )


# -- lease/engine-leader -----------------------------------------------------------------------------------
def encode_lease(machine_id: str, version: int) -> str:
    return go_json({"MachineID": machine_id, "Version": version})


def decode_lease(raw: str, *, index: int, ttl: float) -> Lease:
    """fleet's lease JSON, or a bare machine ID (legacy version 0)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return Lease(machine_id=raw, version=0, index=index, ttl=ttl)
    if isinstance(data, dict) and isinstance(data.get("MachineID"), str):
        return Lease(machine_id=data["MachineID"], version=int(data.get("Version") or 0), index=index, ttl=ttl)
    return Lease(machine_id=str(raw), version=0, index=index, ttl=ttl)
