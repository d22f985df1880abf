"""Property-based checks: the unit parser, name validation, requirements and the registry codecs never crash
or hang on arbitrary input; they accept or refuse with a one-line error."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetpy.errors import RegistryError, UnitFileError
from fleetpy.model.job import Requirements, expand_specifiers, parse_metadata_requirement, validate_requirements
from fleetpy.model.names import UnitNameInfo, mangle, validate_name
from fleetpy.model.unit import UnitFile
from fleetpy.registry import codec

_lines = st.lists(
    st.one_of(
        st.text(max_size=60),
        st.sampled_from(["[Unit]", "[Service]", "[X-Fleet]", "[Install]", "# c", "; c", "", "\\", "[bad"]),
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["Conflicts", "MachineOf", "Global", "MachineID",
                                                             "MachineMetadata", "Replaces", "X-Conflicts",
                                                             "ExecStart", "Description"]),
                  st.text(max_size=40)),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(_lines)
def test_parser_accepts_or_refuses_in_one_line(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        unit = UnitFile.parse(text, source="fuzz.service")
    except UnitFileError as err:
        assert "\n" not in str(err) and str(err).startswith("fuzz.service")
        return
    # the canonical form is a fixed point: parse(serialize(x)) == x
    again = UnitFile.parse(unit.contents)
    assert again.contents == unit.contents and again.hash == unit.hash
    try:
        validate_requirements(unit)
    except UnitFileError as err:
        assert "\n" not in str(err)
    Requirements.of(unit, "x@y.service")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_name_validation_is_total(name: str) -> None:
    try:
        validate_name(name)
    except UnitFileError as err:
        assert "\n" not in str(err)
    else:
        assert "/" not in name and "\x00" not in name and name not in (".", "..")
    info = UnitNameInfo.of(name)
    assert info.full_name == name
    assert "/" not in mangle(name)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=10), st.text(max_size=30), st.text(max_size=30))
def test_metadata_and_specifiers_are_total(values: list[str], template: str, name: str) -> None:
    parsed = parse_metadata_requirement(values)
    for key, allowed in parsed.items():
        assert key and all(allowed) and "=" not in key
    expand_specifiers(template, name)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_codecs_refuse_garbage_with_registry_error(raw: str) -> None:
    for decode in (codec.decode_job_object, codec.decode_unit_body, codec.decode_machine):
        try:
            decode(raw)  # type: ignore[operator]
        except (RegistryError, UnitFileError):
            pass
    codec.decode_lease(raw, index=1, ttl=1.0)
    try:
        codec.decode_unit_state("a.service", "m", raw)
    except RegistryError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_go_json_is_valid_json(text: str) -> None:
    encoded = codec.go_json({"Raw": text, "n": [1, 2], "b": True, "z": None})
    assert json.loads(encoded) == {"Raw": text, "n": [1, 2], "b": True, "z": None}
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
