"""Unit names: fleet's validation table and messages (fleet-reference 2.2), name info, CLI argument mangling."""

from __future__ import annotations

import pytest

from fleetpy.errors import UnitNameError
from fleetpy.model.names import UnitNameInfo, is_valid_name, mangle, validate_name

GOOD = ["foo.service", "foo@.service", "yo.yo.service", "hello:world.service", "yes@no\\.service", "a-b_c.socket",
        "foo@bar@baz.service", "foo.1@2.service", "ssh@.socket", "x.mount", "x.busname", "x.snapshot", "x.scope",
        "t@1.timer", "p@1.path", "t@x.target", "a" * 248 + ".service"]


@pytest.mark.parametrize("name", GOOD)
def test_valid_names(name: str) -> None:
    validate_name(name)
    assert is_valid_name(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "unit name cannot be empty"),
        ("a" * 249 + ".service", "unit name exceeds maximum length (256)"),
        ("foo", 'unit name must contain "."'),
        ("foo.", 'unit name cannot end in "."'),
        ("foo.servICE", 'invalid unit type: "servICE"'),
        ("foo.link", 'invalid unit type: "link"'),
        ("foo@1.mount", 'invalid unit type for template: "mount"'),
        ("foo@.device", 'invalid unit type for template: "device"'),
        ("yes/no.service", "invalid character '/' in unit name"),
        ("../x.service", "invalid character '/' in unit name"),
        ("a b.service", "invalid character ' ' in unit name"),
        ("caf\u00e9.service", "invalid character 'é' in unit name"),
        ("what?.service", "invalid character '?' in unit name"),
        ("@foo.service", 'unit name cannot start in "@"'),
    ],
)
def test_invalid_names_with_fleets_messages(name: str, message: str) -> None:
    with pytest.raises(UnitNameError) as info:
        validate_name(name)
    assert str(info.value) == message
    assert not is_valid_name(name)


@pytest.mark.parametrize(
    ("full", "name", "prefix", "template", "instance", "is_instance", "is_template"),
    [  # fleet unit/unit_test.go TestNamedUnit
        ("foo.service", "foo", "foo", "foo@.service", "", False, False),
        ("foo@.service", "foo@", "foo", "foo@.service", "", False, True),
        ("foo@bar.service", "foo@bar", "foo", "foo@.service", "bar", True, False),
        ("foo@bar@baz.service", "foo@bar@baz", "foo", "foo@.service", "bar@baz", True, False),
        ("foo.1@.service", "foo.1@", "foo.1", "foo.1@.service", "", False, True),
        ("foo.1@2.service", "foo.1@2", "foo.1", "foo.1@.service", "2", True, False),
        ("ssh@.socket", "ssh@", "ssh", "ssh@.socket", "", False, True),
        ("ssh@1.socket", "ssh@1", "ssh", "ssh@.socket", "1", True, False),
    ],
)
def test_name_info(full: str, name: str, prefix: str, template: str, instance: str, is_instance: bool,
                   is_template: bool) -> None:
    info = UnitNameInfo.of(full)
    assert (info.full_name, info.name, info.prefix, info.instance) == (full, name, prefix, instance)
    assert (info.is_instance, info.is_template) == (is_instance, is_template)
    if is_instance or is_template:
        assert info.template == template


@pytest.mark.parametrize(
    ("arg", "name"),
    [("foo", "foo.service"), ("foo.service", "foo.service"), ("foo.link", "foo.link.service"),
     ("a/b/c.socket", "c.socket"), ("../x.timer", "x.timer"), ("foo.target", "foo.target.service"),
     ("foo.swap", "foo.swap.service"), ("d.device", "d.device"), ("m.automount", "m.automount"),
     ("p.path", "p.path"), ("web@1", "web@1.service")],
)
def test_mangle_is_fleetctls(arg: str, name: str) -> None:
    assert mangle(arg) == name
