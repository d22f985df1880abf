"""[X-Fleet] requirements: every rejected combination of fleet-reference 2.4, the allowed ones, option parsing,
specifiers and the warnings fleetpy verify prints."""

from __future__ import annotations

import pytest

from fleetpy.errors import RequirementsError
from fleetpy.model.job import (
    Requirements,
    expand_specifiers,
    is_truthy,
    parse_metadata_requirement,
    validate_requirements,
    warnings_for,
)
from fleetpy.model.unit import UnitFile


def xfleet(*lines: str) -> UnitFile:
    return UnitFile.parse("[Service]\nExecStart=/bin/true\n\n[X-Fleet]\n" + "\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["MachineOf=db.service", "Conflicts=db*.service"],
         'unresolvable requirements: peer "db.service" matches conflict "db*.service"'),
        (["MachineOf=db.service", "Replaces=db.service"],
         'unresolvable requirements: peer "db.service" matches replace "db.service"'),
        (["MachineID=abc", "MachineOf=db.service"], "MachineID cannot be used with Peers"),
        (["MachineID=abc", "Conflicts=x*"], "MachineID cannot be used with Conflicts"),
        (["MachineID=abc", "Global=true"], "MachineID cannot be used with Global"),
        (["MachineID=abc", "Replaces=x.service"], "MachineID cannot be used with Replaces"),
        (["Global=true", "MachineOf=db.service"], "Global cannot be used with Peers"),
        (["Global=true", "Replaces=x.service"], "Global cannot be used with Replaces"),
        (["Conflicts=x*", "Replaces=y.service"], "Conflicts cannot be used with Replaces"),
        (["X-ConditionMachineID=abc", "Global=yes"], "MachineID cannot be used with Global"),
        (["X-ConditionMachineBootID=abc", "X-ConditionMachineOf=db.service"], "MachineID cannot be used with Peers"),
        (["X-ConditionMachineOf=db.service", "X-Conflicts=d?.service"],
         'unresolvable requirements: peer "db.service" matches conflict "d?.service"'),
        (["MachineOf=%n", "Conflicts=%n"], 'unresolvable requirements: peer "%n" matches conflict "%n"'),
    ],
)
def test_rejected_combinations(lines: list[str], message: str) -> None:
    with pytest.raises(RequirementsError) as info:
        validate_requirements(xfleet(*lines))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "lines",
    [["Global=true", "Conflicts=x*"], ["Global=true", "MachineMetadata=role=web"], ["MachineID=abc"],
     ["MachineOf=a.service", "Conflicts=b*"], ["Replaces=a.service", "MachineOf=b.service"],
     ["Global=false", "MachineID=abc"], ["Global=true", "Global=false", "MachineOf=a.service"],
     ["Bogus=1"], []],
)
def test_allowed_combinations(lines: list[str]) -> None:
    validate_requirements(xfleet(*lines))


def test_requirements_parsing() -> None:
    req = Requirements.of(xfleet(
        "X-ConditionMachineID=legacy", "MachineID=first", "MachineID=second",
        "MachineOf=a.service", "X-ConditionMachineOf=b.service",
        'MachineMetadata="role=web" "role=db"', "X-ConditionMachineMetadata=disk=ssd", "MachineMetadata=bad=x=y",
        "Conflicts=a* b*", "X-Conflicts=c*", "Replaces=old.service",
    ), "u.service")
    assert req.machine_id == "first"
    assert req.peers == ("a.service", "b.service")
    assert req.metadata == {"role": ("web", "db"), "disk": ("ssd",)}
    assert req.conflicts == ("a*", "b*", "c*")
    assert req.replaces == ("old.service",)
    assert not req.is_global


@pytest.mark.parametrize(("values", "is_global"), [(["true"], True), (["TRUE"], True), (["yes"], True),
                                                   (["1"], True), (["on"], True), (["t"], True), (["false"], False),
                                                   (["true", "false"], False), (["no", "y"], False), ([], False)])
def test_global_truthiness_last_value_wins(values: list[str], is_global: bool) -> None:
    assert Requirements.of(xfleet(*(f"Global={v}" for v in values))).is_global is is_global
    if values:
        assert is_truthy(values[-1]) is is_global


@pytest.mark.parametrize(
    ("value", "name", "expected"),
    [("%n", "foo@bar.service", "foo@bar.service"), ("%N", "foo@bar.service", "foo@bar"),
     ("%p", "foo@bar.service", "foo"), ("%i", "foo@bar.service", "bar"), ("%i", "plain.service", ""),
     ("hostname=%i", "metadata@n1.service", "hostname=n1"), ("%%i", "a@b.service", "%b"),
     ("%x stays", "a@b.service", "%x stays"), ("%i", "", "%i")],
)
def test_specifiers(value: str, name: str, expected: str) -> None:
    assert expand_specifiers(value, name) == expected


def test_specifiers_are_expanded_per_instance() -> None:
    template = xfleet("MachineID=%i", "Conflicts=%p@*.service")
    req = Requirements.of(template, "pin@abc.service")
    assert (req.machine_id, req.conflicts) == ("abc", ("pin@*.service",))


def test_metadata_values_fleet_would_drop() -> None:
    assert parse_metadata_requirement(["a=b", "a=c", "x", "=y", "z=", "k=v=w"]) == {"a": ("b", "c")}


def test_warnings_for() -> None:
    unit = xfleet("Bogus=1", "MachineMetadata=novalue", "X-ConditionMachineOf=a.service", "MachineID=%i")
    assert warnings_for(unit, "plain.service") == [
        'unknown [X-Fleet] option "Bogus" (ignored by the scheduler)',
        'MachineMetadata value "novalue" is not key=value and would be silently ignored',
        'MachineID uses %i but "plain.service" is not a template or instance (expands to "")',
        "X-ConditionMachineOf is a legacy name: use MachineOf",
    ]
    assert warnings_for(xfleet("MachineID=%i"), "pin@.service") == []
