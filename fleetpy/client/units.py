"""How command-line unit arguments become registry units (fleet-reference 1.6: lazyCreateUnits, getUnitFile,
checkUnitCreation), split into a read-only ``resolve_units`` and a writing ``create_units``.

I/O: reads the registry and local files, writes only in ``create_units``. Every argument is resolved and every
unit file parsed and validated before the first write, so one bad file leaves etcd untouched (fleet validated one
unit at a time, after writing the previous ones). An argument is a path: its basename (``.service`` appended when
the type is not recognised) is the unit name, so ``../x.service`` names ``x.service`` and a name can never carry a
``/``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fleetpy.client.api import FleetClient
from fleetpy.client.errors import UnitCreationError
from fleetpy.client.report import Reporter
from fleetpy.errors import UnitFileError
from fleetpy.model.job import validate_requirements, warnings_for
from fleetpy.model.names import RECOGNIZED_TYPES, UnitNameInfo, mangle, validate_name
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile

ALLOWED_REPLACE: dict[str, frozenset[JobState]] = {
    "submit": frozenset({JobState.INACTIVE}),
    "load": frozenset({JobState.INACTIVE, JobState.LOADED}),
    "start": frozenset({JobState.INACTIVE, JobState.LOADED, JobState.LAUNCHED}),
}
"""--replace is honoured only when the registry unit's desired state is in the command's set (checkReplaceUnitState)."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """One argument, resolved. ``unit_file`` is what to write (None: the registry already has what we need)."""

    arg: str
    name: str
    existing: Unit | None
    unit_file: UnitFile | None = None
    source: str = ""


def unit_path(arg: str) -> str:
    """fleetctl's maybeAppendDefaultUnitType: the file an argument refers to (``foo`` -> ``foo.service``)."""
    base = posixpath.basename(arg)
    dot = base.rfind(".")
    if dot < 0 or base[dot + 1 :] not in RECOGNIZED_TYPES:
        return arg + ".service"
    return arg


def unit_names(args: Iterable[str]) -> list[str]:
    """The unit names of the arguments, in order, without duplicates."""
    return list(dict.fromkeys(mangle(arg) for arg in args))


def find_units(client: FleetClient, args: Sequence[str]) -> list[Unit]:
    """The registry units named by the arguments, in argument order; absent ones are left out (fleet's findUnits)."""
    return [unit for unit in client.units_named(unit_names(args)).values() if unit is not None]


def load_file(path: str, name: str) -> UnitFile:
    """Parse and validate one local unit file for unit ``name``: name rules, parse rules, ``[X-Fleet]``
    combinations. Errors are one line naming the file and the reason."""
    try:
        validate_name(name)
    except UnitFileError as err:
        raise UnitCreationError(f"{path}: invalid unit name \"{name}\": {err}") from err
    try:
        unit_file = UnitFile.from_path(path)
    except UnitFileError as err:
        raise UnitCreationError(str(err)) from err
    check_requirements(unit_file, source=path)
    return unit_file


def check_requirements(unit_file: UnitFile, *, source: str) -> None:
    try:
        validate_requirements(unit_file)
    except UnitFileError as err:
        raise UnitCreationError(f"{source}: [X-Fleet]: {err}") from err


def _local_file(path: str, name: str) -> str | None:
    """The local file that backs ``name``: the argument itself, else (instances) the template next to it."""
    if os.path.exists(path):
        return path
    info = UnitNameInfo.of(name)
    if info.is_instance:
        template = posixpath.join(posixpath.dirname(path), info.template)
        if os.path.exists(template):
            return template
    return None


def _check_existing(client: FleetClient, arg: str, existing: Unit, *, command: str, replace: bool,
                    report: Reporter) -> Resolved:
    """checkUnitCreation for a unit already in the registry: warn when the local file differs; replace it when
    asked and allowed."""
    path = unit_path(arg)
    name = existing.name
    local = _local_file(path, name)
    if not replace:
        if local is not None:
            try:
                differs = UnitFile.from_path(local).hash != existing.hash
            except UnitFileError as err:
                report.err(f"WARNING: ignoring local unit file {local}, Unit {name} from the registry is used: {err}")
                differs = False
            if differs:
                kind = "unit file" if local == path else "template unit file"
                report.err(f"WARNING: Unit {name} in registry differs from local {kind} {local}. "
                           "Add --replace to override.")
        return Resolved(arg, name, existing)
    if local is None:
        raise UnitCreationError(f"--replace: no local unit file for Unit({name}): {path} does not exist")
    unit_file = load_file(local, name) if local == path else _template_file(local, name)
    if unit_file.hash == existing.hash:
        report.out(f"Found same Unit({name}) in Registry, nothing to do")
        return Resolved(arg, name, existing)
    allowed = ALLOWED_REPLACE.get(command)
    if allowed is None:
        raise UnitCreationError("error: replacing units is not supported in this context")
    if existing.target_state not in allowed:
        report.out(f"Warning: can not replace Unit({name}) in state '{existing.target_state}', "
                   "use the appropriate command")
        return Resolved(arg, name, existing)
    return Resolved(arg, name, existing, unit_file, local)


def _template_file(path: str, name: str, read: dict[str, UnitFile] | None = None) -> UnitFile:
    """A template file used for instance ``name``: the instance's name is validated, the template parsed (once
    per command: ``read`` keeps what was read, a start of 1,000 instances reads their template once)."""
    try:
        validate_name(name)
    except UnitFileError as err:
        raise UnitCreationError(f"{path}: invalid unit name \"{name}\": {err}") from err
    if read is not None and path in read:
        return read[path]
    try:
        unit_file = UnitFile.from_path(path)
    except UnitFileError as err:
        raise UnitCreationError(f"unable to load template Unit({posixpath.basename(path)}) from file: {err}") from err
    check_requirements(unit_file, source=path)
    if read is not None:
        read[path] = unit_file
    return unit_file


def _resolve_new(arg: str, name: str, known: Mapping[str, Unit | None], read: dict[str, UnitFile]) -> Resolved:
    """getUnitFile for a unit the registry does not have: the local file, else an instance's template (registry
    first, as read into ``known``, then a file next to the argument)."""
    path = unit_path(arg)
    if os.path.lexists(path):
        return Resolved(arg, name, None, load_file(path, name), path)
    info = UnitNameInfo.of(name)
    if not info.is_instance:
        raise UnitCreationError(f"unable to find Unit({name}) in Registry or on filesystem")
    try:
        validate_name(name)
    except UnitFileError as err:
        raise UnitCreationError(f"{arg}: invalid unit name \"{name}\": {err}") from err
    template = known.get(info.template)
    if template is not None:
        source = f"template Unit({info.template}) in registry"
        check_requirements(template.unit_file, source=source)
        return Resolved(arg, name, None, template.unit_file, source)
    template_path = posixpath.join(posixpath.dirname(path), info.template)
    if not os.path.lexists(template_path):
        raise UnitCreationError(f"failed getting Unit({name}) from template: unable to find template "
                                f"Unit({info.template}) in Registry or on filesystem")
    return Resolved(arg, name, None, _template_file(template_path, name, read), template_path)


def resolve_units(client: FleetClient, args: Sequence[str], *, command: str, replace: bool = False,
                  report: Reporter) -> list[Resolved]:
    """Resolve every argument (reads only). Raises UnitCreationError on the first argument that cannot become a
    unit; prints fleet's notices (differs-from-local warnings, --replace notes) through ``report``."""
    out: dict[str, Resolved] = {}
    names = list(dict.fromkeys(mangle(arg) for arg in args))
    templates = [info.template for info in map(UnitNameInfo.of, names) if info.is_instance]
    known = client.units_named(list(dict.fromkeys(names + templates)))  # one read each, or one read of all
    read: dict[str, UnitFile] = {}  # template files by path
    for arg in args:
        name = mangle(arg)
        if name in out:
            continue
        existing = known[name]
        if existing is not None:
            out[name] = _check_existing(client, arg, existing, command=command, replace=replace, report=report)
        else:
            out[name] = _resolve_new(arg, name, known, read)
    return list(out.values())


def create_units(client: FleetClient, resolved: Sequence[Resolved], *, report: Reporter,
                 state: JobState = JobState.INACTIVE) -> list[Unit]:
    """Write the units that need writing (new ones and replacements), in argument order; warn about what fleet
    would silently ignore (unknown ``[X-Fleet]`` keys, malformed metadata). New units get target ``state``,
    replacements ``inactive`` (the command then sets its state, as fleetctl does)."""
    units = [Unit(item.name, item.unit_file, JobState.INACTIVE if item.existing else state)
             for item in resolved if item.unit_file is not None]
    for unit in units:
        for warning in warnings_for(unit.unit_file, unit.name):
            report.err(f"WARNING: Unit {unit.name}: {warning}")
    client.create_units(units)
    return units
