"""``/units`` and ``/units/<name>``: list, get, create/replace/set-state (PUT) and destroy, with fleet's codes.

Pure logic over the ``ApiRegistry`` port (the registry does the I/O). Rules and messages follow fleet's
``api/units.go``; fleetpy is stricter in three places, each a 400 instead of a silent mess: an invalid
``desiredState``, a template created with a non-inactive state, and options that would not survive fleet's
canonical serialization (the stored body would hash differently from the unit).
"""

from __future__ import annotations

import json

from fleetpy.api.errors import ApiError, go_quote
from fleetpy.api.messages import JSON, Request, Response, json_response, no_content
from fleetpy.api.pagination import find_token, page_of
from fleetpy.api.port import ApiRegistry
from fleetpy.api.schema import job_state, page_json, unit_fields, unit_json
from fleetpy.errors import UnitFileError
from fleetpy.model.job import validate_requirements
from fleetpy.model.names import UnitNameInfo, is_valid_name, validate_name
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile, UnitOption, parse_options, serialize

NOT_FOUND = "unit does not exist"


def list_units(registry: ApiRegistry, request: Request, token_limit: int) -> Response:
    token = find_token(request.query, token_limit)
    units = registry.units()
    items, next_token = page_of(units, token)
    schedule = {s.name: s for s in registry.schedule()} if items else {}
    body = [unit_json(u, schedule.get(u.name)) for u in items]
    return json_response(200, page_json("units", body, next_token.encode() if next_token else None))


def get_unit(registry: ApiRegistry, name: str) -> Response:
    unit = registry.unit(name) if is_valid_name(name) else None
    if unit is None:
        raise ApiError(404, NOT_FOUND)
    scheduled = None if unit.is_global else registry.scheduled_unit(name)
    return json_response(200, unit_json(unit, scheduled))


def delete_unit(registry: ApiRegistry, name: str) -> Response:
    if not is_valid_name(name) or registry.unit(name) is None:
        raise ApiError(404, NOT_FOUND)
    registry.destroy_unit(name)
    return no_content()


def check_content_type(content_types: list[str] | tuple[str, ...]) -> None:
    """fleet's validateContentType: exactly one header whose media type is application/json (params allowed)."""
    if len(content_types) != 1:
        raise ApiError(415, f"expected 1 Content-Type, got {len(content_types)}")
    if content_types[0].split(";", 1)[0].strip() != JSON:
        raise ApiError(415, "only acceptable Content-Type is application/json")


def _decode(body: bytes) -> dict[str, object]:
    if not body.strip():
        raise ApiError(400, "unable to decode body: EOF")
    try:
        return unit_fields(json.loads(body))
    except (ValueError, RecursionError) as err:
        raise ApiError(400, f"unable to decode body: {err}") from None


def validated_unit_file(options: tuple[UnitOption, ...]) -> UnitFile:
    """fleet's ValidateOptions: the canonical text must re-parse (line length...) to the same canonical text, and
    the ``[X-Fleet]`` requirements must be satisfiable."""
    unit_file = UnitFile(options)
    try:
        reparsed = parse_options(unit_file.contents, source="unit options")
    except UnitFileError as err:
        raise ApiError(400, str(err)) from None
    if serialize(reparsed) != unit_file.contents:  # the stored body would not hash like the unit
        grouped = [o for section in unit_file.sections() for o in options if o.section == section]
        bad = next((o for o, r in zip(grouped, reparsed, strict=False) if o != r), grouped[-1])
        raise ApiError(400, f"invalid unit option {go_quote(bad.name)} in section {go_quote(bad.section)}: "
                            "does not survive serialization")
    try:
        validate_requirements(unit_file)
    except UnitFileError as err:
        raise ApiError(400, str(err)) from None
    return unit_file


def _target(name: str, raw: str) -> JobState:
    try:
        state = job_state(raw, JobState.INACTIVE) or JobState.INACTIVE
    except ValueError:
        raise ApiError(400, f"invalid desiredState {go_quote(raw)}: expect inactive, loaded or launched") from None
    if state is not JobState.INACTIVE and UnitNameInfo.of(name).is_template:
        raise ApiError(400, f"cannot activate template {go_quote(name)}")
    return state


def put_unit(registry: ApiRegistry, item: str, request: Request) -> Response:
    check_content_type(tuple(request.content_types))
    fields = _decode(request.body)
    name = str(fields["name"]) or item
    if name != item:
        raise ApiError(400, f"name in URL {go_quote(item)} differs from unit name in request body {go_quote(name)}")
    try:
        validate_name(name)
    except UnitFileError as err:
        raise ApiError(400, str(err)) from None
    options = fields["options"]
    assert isinstance(options, tuple)
    desired = str(fields["desiredState"])
    existing = registry.unit(name)
    if existing is None and not options:
        raise ApiError(409, "unit does not exist and options field empty")
    if options and (existing is None or UnitFile(options).hash != existing.hash):
        unit_file = validated_unit_file(options)
        registry.create_unit(Unit(name, unit_file, _target(name, desired)))
        return no_content(201)
    if not desired:
        raise ApiError(409, "must provide DesiredState to update existing unit")
    registry.set_target_state(name, _target(name, desired))
    return no_content(204)
