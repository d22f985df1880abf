"""``[X-Fleet]`` requirements: current and legacy option names, specifiers, Global truthiness, validation.

Pure. Semantics from fleet-reference.md 2.3-2.6 (fleet ``job/job.go``, ``api/units.go`` ValidateOptions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from fleetpy.errors import RequirementsError
from fleetpy.model.names import UnitNameInfo
from fleetpy.model.unit import UnitFile

# canonical option -> accepted names, in precedence order (the first present wins for MachineID)
MACHINE_ID_KEYS = ("MachineID", "X-ConditionMachineID", "X-ConditionMachineBootID")
MACHINE_OF_KEYS = ("MachineOf", "X-ConditionMachineOf")
METADATA_KEYS = ("MachineMetadata", "X-ConditionMachineMetadata")
CONFLICTS_KEYS = ("Conflicts", "X-Conflicts")
GLOBAL_KEY = "Global"
REPLACES_KEY = "Replaces"
VALID_KEYS = frozenset(
    MACHINE_ID_KEYS + MACHINE_OF_KEYS + METADATA_KEYS + CONFLICTS_KEYS + (GLOBAL_KEY, REPLACES_KEY)
)
_TRUTHY = frozenset({"true", "yes", "1", "on", "t"})


def is_truthy(value: str) -> bool:
    return value.strip().lower() in _TRUTHY


def expand_specifiers(value: str, unit_name: str) -> str:
    """fleet's unitPrintf: ``%n %N %p %i`` from the unit's own name, a plain non-recursive replace."""
    if "%" not in value or not unit_name:
        return value
    info = UnitNameInfo.of(unit_name)
    out: list[str] = []
    i = 0
    table = {"n": unit_name, "N": info.name, "p": info.prefix, "i": info.instance}
    while i < len(value):
        ch = value[i]
        if ch == "%" and i + 1 < len(value) and value[i + 1] in table:
            out.append(table[value[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_metadata_requirement(values: list[str]) -> dict[str, tuple[str, ...]]:
    """``k=v`` values -> key -> allowed values (ORed); malformed values (not exactly two non-empty parts) are
    dropped, as fleet silently does."""
    out: dict[str, list[str]] = {}
    for raw in values:
        parts = raw.split("=")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            continue
        out.setdefault(parts[0], []).append(parts[1])
    return {k: tuple(v) for k, v in out.items()}


def dropped_metadata_values(values: list[str]) -> list[str]:
    return [v for v in values if len(p := v.split("=")) != 2 or not p[0] or not p[1]]


@dataclass(frozen=True, slots=True)
class Requirements:
    """The scheduling requirements of one unit, specifiers already expanded with the unit's name."""

    machine_id: str = ""
    peers: tuple[str, ...] = ()
    metadata: dict[str, tuple[str, ...]] = field(default_factory=dict)
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    is_global: bool = False

    @classmethod
    def of(cls, unit: UnitFile, unit_name: str = "") -> Requirements:
        """The requirements of ``unit`` as instance ``unit_name`` (specifiers expanded); memoised by content
        hash and name (every scheduling and agent pass asks for every unit's)."""
        key = (unit.hash, unit_name)
        found = _REQUIREMENTS.get(key)
        if found is None:
            if len(_REQUIREMENTS) >= _REQUIREMENTS_MAX:
                _REQUIREMENTS.clear()
            found = _REQUIREMENTS[key] = cls._of(unit, unit_name)
        return found

    @classmethod
    def _of(cls, unit: UnitFile, unit_name: str) -> Requirements:
        x = {k: [expand_specifiers(v, unit_name) for v in vals] for k, vals in unit.xfleet().items()}
        machine_id = ""
        for key in MACHINE_ID_KEYS:
            if x.get(key):
                machine_id = x[key][0]
                break
        peers = [v for key in MACHINE_OF_KEYS for v in x.get(key, [])]
        meta = [v for key in METADATA_KEYS for v in x.get(key, [])]
        conflicts = [part for key in CONFLICTS_KEYS for v in x.get(key, []) for part in v.split()]
        replaces = [part for v in x.get(REPLACES_KEY, []) for part in v.split()]
        global_values = x.get(GLOBAL_KEY, [])
        return cls(
            machine_id=machine_id,
            peers=tuple(peers),
            metadata=parse_metadata_requirement(meta),
            conflicts=tuple(conflicts),
            replaces=tuple(replaces),
            is_global=bool(global_values) and is_truthy(global_values[-1]),
        )


_REQUIREMENTS: dict[tuple[str, str], Requirements] = {}
_REQUIREMENTS_MAX = 1 << 16


def validate_requirements(unit: UnitFile) -> None:
    """fleet's ValidateOptions: refuse impossible ``[X-Fleet]`` combinations (raw values, before specifiers)."""
    req = Requirements.of(unit, "")
    for peer in req.peers:
        for conflict in req.conflicts:
            if fnmatchcase(peer, conflict):
                raise RequirementsError(f'unresolvable requirements: peer "{peer}" matches conflict "{conflict}"')
        for replace in req.replaces:
            if fnmatchcase(peer, replace):
                raise RequirementsError(f'unresolvable requirements: peer "{peer}" matches replace "{replace}"')
    pairs = [
        (bool(req.machine_id) and bool(req.peers), "MachineID cannot be used with Peers"),
        (bool(req.machine_id) and bool(req.conflicts), "MachineID cannot be used with Conflicts"),
        (bool(req.machine_id) and req.is_global, "MachineID cannot be used with Global"),
        (bool(req.machine_id) and bool(req.replaces), "MachineID cannot be used with Replaces"),
        (req.is_global and bool(req.peers), "Global cannot be used with Peers"),
        (req.is_global and bool(req.replaces), "Global cannot be used with Replaces"),
        (bool(req.conflicts) and bool(req.replaces), "Conflicts cannot be used with Replaces"),
    ]
    for broken, message in pairs:
        if broken:
            raise RequirementsError(message)


def warnings_for(unit: UnitFile, unit_name: str) -> list[str]:
    """What ``fleetpy verify`` warns about: unknown keys, metadata fleet would drop, specifiers in a non-template."""
    out: list[str] = []
    x = unit.xfleet()
    for key in x:
        if key not in VALID_KEYS:
            out.append(f'unknown [X-Fleet] option "{key}" (ignored by the scheduler)')
    for key in METADATA_KEYS:
        for bad in dropped_metadata_values(x.get(key, [])):
            out.append(f'{key} value "{bad}" is not key=value and would be silently ignored')
    info = UnitNameInfo.of(unit_name) if unit_name else None
    if info is not None and not info.has_at:
        for key, values in x.items():
            if any("%i" in v for v in values):
                out.append(f'{key} uses %i but "{unit_name}" is not a template or instance (expands to "")')
    for key in MACHINE_ID_KEYS[1:]:
        if key in x:
            out.append(f"{key} is a legacy name: use {MACHINE_ID_KEYS[0]}")
    for keys in (MACHINE_OF_KEYS, METADATA_KEYS, CONFLICTS_KEYS):
        if keys[1] in x:
            out.append(f"{keys[1]} is a legacy name: use {keys[0]}")
    return out
