"""Readable builders for engine tests: machines A/B/C, units with ``[X-Fleet]`` options, cluster snapshots."""

from __future__ import annotations

from fleetpy.engine.cluster import ClusterState, UnitSpec
from fleetpy.engine.plan import Plan, TaskKind
from fleetpy.model.job import Requirements
from fleetpy.model.records import JobState, MachineState
from fleetpy.model.unit import UnitFile

# sorted A < B < C, distinct 8-char short IDs
A = "aaaa1111" + "0" * 24
B = "bbbb2222" + "0" * 24
C = "cccc3333" + "0" * 24
D = "dddd4444" + "0" * 24
SHORT = {A: "A", B: "B", C: "C", D: "D"}
NAMES = {"A": A, "B": B, "C": C, "D": D}


def unit(name: str, on: str | None = None, state: JobState = JobState.LAUNCHED,
         **xfleet: str | list[str]) -> UnitSpec:
    """A unit; ``on`` is a machine letter (or full ID) it is scheduled to. X-Fleet values may use A/B/C for
    MachineID (full) or ``A8`` for the short ID."""
    lines = ["[Service]", "ExecStart=/bin/true", "[X-Fleet]"]
    for key, values in xfleet.items():
        for value in [values] if isinstance(values, str) else values:
            if key == "MachineID" and value in NAMES:
                value = NAMES[value]
            elif key == "MachineID" and value[:-1] in NAMES and value.endswith("8"):
                value = NAMES[value[:-1]][:8]
            lines.append(f"{key}={value}")
    requirements = Requirements.of(UnitFile.parse("\n".join(lines) + "\n"), name)
    target = NAMES.get(on, on) if on else None
    return UnitSpec.of(name, requirements, state, target)


def machine(letter_or_id: str, **metadata: str) -> MachineState:
    return MachineState(NAMES.get(letter_or_id, letter_or_id), metadata=metadata)


def cluster(units: list[UnitSpec], machines: list[MachineState] | str = "ABC", held: str = "") -> ClusterState:
    ms = [machine(m) for m in machines] if isinstance(machines, str) else machines
    return ClusterState.of(units, ms, held=[NAMES[h] for h in held])


def steps(result: Plan) -> list[str]:
    """``["-web.service@A", "+web.service@B"]``: unschedule (-) / schedule (+) and machine letter."""
    return [f"{'+' if t.kind is TaskKind.SCHEDULE else '-'}{t.unit}@{SHORT.get(t.machine_id, t.machine_id[:8])}"
            for t in result.tasks]
