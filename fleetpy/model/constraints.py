"""``[X-Fleet]`` constraint checks: can this machine run this unit, and if not, why.

Pure, shared by the agent (global units: ``metadata_matches``, ``has_conflict``) and the engine (scheduler, plan,
explain), so neither imports the other. Semantics from fleet-reference.md 2.3-2.6 (fleet ``agent/state.go``
AbleToRun, HasConflict, hasReplace; ``machine.HasMetadata``). Globs are ``fnmatchcase``, checked in both directions.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import NamedTuple, Protocol

from fleetpy.model.job import Requirements
from fleetpy.model.records import MachineState


class MachineView(Protocol):
    """A machine and the units placed on it (scheduled non-global units plus the global units it runs), and
    ``constrained``: those of them that declare Conflicts or Replaces (``constrained(units)``). Only their globs
    can refuse a newcomer that declares neither: a check scans them, not a machine's every unit."""

    @property
    def machine(self) -> MachineState: ...

    @property
    def units(self) -> Mapping[str, Requirements]: ...

    @property
    def constrained(self) -> Mapping[str, Requirements]: ...


def is_constrained(requirements: Requirements) -> bool:
    """Whether a unit's own globs can refuse another unit (it declares Conflicts or Replaces)."""
    return bool(requirements.conflicts or requirements.replaces)


def constrained(units: Mapping[str, Requirements]) -> dict[str, Requirements]:
    """The units among ``units`` that declare Conflicts or Replaces."""
    return {name: req for name, req in units.items() if is_constrained(req)}


class RefusalKind(enum.StrEnum):
    """Why a machine refuses a unit, in the order the checks run (fleet's AbleToRun order)."""

    MACHINE_ID = "machine-id"
    METADATA = "metadata"
    PEER = "peer"
    CONFLICT = "conflict"
    REPLACED = "replaced"


class Refusal(NamedTuple):
    kind: RefusalKind
    detail: str  # the wanted machine ID, the unmet metadata, the missing peer, or the other unit's name

    def __str__(self) -> str:
        if self.kind is RefusalKind.MACHINE_ID:
            return f"not MachineID {self.detail}"
        if self.kind is RefusalKind.METADATA:
            return f"lacks metadata {self.detail}"
        if self.kind is RefusalKind.PEER:
            return f"peer {self.detail} is not scheduled here"
        if self.kind is RefusalKind.CONFLICT:
            return f"conflicts with {self.detail}"
        return f"{self.detail} replaces it here"


class Verdict(NamedTuple):
    """``(ok, reason)``; ``refusal`` is set when not ok."""

    ok: bool
    reason: str
    refusal: Refusal | None = None


def describe_metadata(required: Mapping[str, Sequence[str]]) -> str:
    """``{"role": ("db", "cache"), "region": ("eu",)}`` -> ``role=db|cache and region=eu``."""
    return " and ".join(f"{key}={'|'.join(values)}" for key, values in sorted(required.items()))


def unmet_metadata(metadata: Mapping[str, str], required: Mapping[str, Sequence[str]]) -> dict[str, Sequence[str]]:
    """The required keys the machine fails: absent, or with a value none of the ORed values match."""
    return {key: values for key, values in required.items() if metadata.get(key) not in values}


def metadata_matches(metadata: Mapping[str, str], required: Mapping[str, Sequence[str]]) -> bool:
    """fleet's HasMetadata: values of one key are ORed, keys are ANDed, the machine must have every key."""
    return all(metadata.get(key) in values for key, values in required.items())


def glob_matches(patterns: Sequence[str], name: str) -> bool:
    return bool(patterns) and any(fnmatchcase(name, pattern) for pattern in patterns)


def conflicting_unit(name: str, conflicts: Sequence[str], others: Mapping[str, Requirements]) -> str | None:
    """The first other unit (sorted) that ``name`` conflicts with, in either direction; None when none.

    ``name``'s Conflicts globs are matched against the others' names, and each other's Conflicts against ``name``.
    A unit never conflicts with itself. One pass, no sort (it runs for every unit and candidate machine)."""
    found: str | None = None
    for other, reqs in others.items():
        if (found is None or other < found) and other != name and (
                glob_matches(conflicts, other) or glob_matches(reqs.conflicts, name)):
            found = other
    return found


def conflict_on(view: MachineView, name: str, conflicts: Sequence[str]) -> str | None:
    """``conflicting_unit`` against the units on ``view``'s machine: the unit's own Conflicts are matched against
    every unit there, the others' only where they declare some (``view.constrained``)."""
    return conflicting_unit(name, conflicts, view.units if conflicts else view.constrained)


def has_conflict(name: str, conflicts: Sequence[str], others: Mapping[str, Requirements]) -> bool:
    """fleet's HasConflict: True when ``name`` may not run next to ``others`` (globs, both directions)."""
    return conflicting_unit(name, conflicts, others) is not None


def replaces_one_way(name: str, replaces: Sequence[str], other: str, other_replaces: Sequence[str]) -> bool:
    """``name`` replaces ``other`` and ``other`` does not replace ``name`` (mutual Replaces are circular: ignored)."""
    return glob_matches(replaces, other) and not glob_matches(other_replaces, name)


def replaced_units(name: str, requirements: Requirements, others: Mapping[str, Requirements]) -> list[str]:
    """The other units (sorted) that ``name`` replaces, one way only."""
    if not requirements.replaces:
        return []
    return [o for o in sorted(others)
            if o != name and replaces_one_way(name, requirements.replaces, o, others[o].replaces)]


def replaced_by(name: str, requirements: Requirements, others: Mapping[str, Requirements]) -> str | None:
    """The first other unit (sorted) that replaces ``name``, one way only; None when none."""
    found: str | None = None
    for other, reqs in others.items():
        if reqs.replaces and (found is None or other < found) and other != name \
                and replaces_one_way(other, reqs.replaces, name, requirements.replaces):
            found = other
    return found


def first_refusal(view: MachineView, name: str, requirements: Requirements) -> Refusal | None:
    """The first reason ``view``'s machine cannot run the unit, or None when it can.

    Checks, in fleet's order: MachineID (full or 8-char short ID), metadata, MachineOf peers (exact names, all
    placed here), Conflicts (both directions), and whether a unit here replaces this one. A unit replacing one
    that is here is able: the replaced unit is the one that moves."""
    machine = view.machine
    if requirements.machine_id and not machine.matches_id(requirements.machine_id):
        return Refusal(RefusalKind.MACHINE_ID, requirements.machine_id)
    if requirements.metadata:
        unmet = unmet_metadata(machine.metadata, requirements.metadata)
        if unmet:
            return Refusal(RefusalKind.METADATA, describe_metadata(unmet))
    units = view.units
    for peer in requirements.peers:
        if peer not in units:
            return Refusal(RefusalKind.PEER, peer)
    conflict = conflict_on(view, name, requirements.conflicts)
    if conflict is not None:
        return Refusal(RefusalKind.CONFLICT, conflict)
    replacer = replaced_by(name, requirements, view.constrained)
    if replacer is not None:
        return Refusal(RefusalKind.REPLACED, replacer)
    return None


def able_to_run(view: MachineView, name: str, requirements: Requirements) -> Verdict:
    """``(ok, reason)``: can ``view``'s machine run unit ``name``? The reason says why not, or what it replaces."""
    refusal = first_refusal(view, name, requirements)
    if refusal is not None:
        return Verdict(False, str(refusal), refusal)
    replaced = replaced_units(name, requirements, view.units)
    if replaced:
        return Verdict(True, "replaces " + ", ".join(replaced))
    return Verdict(True, "")
