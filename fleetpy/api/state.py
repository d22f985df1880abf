"""``/state`` (filtered by ``machineID``/``unitName``, paginated) and ``/state/<name>`` (the first state found).

Pure logic over the ``ApiRegistry`` port. Filters are exact matches; an invalid unit name cannot have a state, so
it lists nothing (and never reaches the store as a key).
"""

from __future__ import annotations

from fleetpy.api.errors import ApiError
from fleetpy.api.messages import Request, Response, json_response
from fleetpy.api.pagination import find_token, page_of
from fleetpy.api.port import ApiRegistry
from fleetpy.api.schema import page_json, unit_state_json
from fleetpy.model.names import is_valid_name


def _first(request: Request, key: str) -> str:
    values = request.query.get(key, ())
    return values[0] if values else ""


def list_states(registry: ApiRegistry, request: Request, token_limit: int) -> Response:
    token = find_token(request.query, token_limit)
    machine_id = _first(request, "machineID")
    unit_name = _first(request, "unitName")
    if unit_name and not is_valid_name(unit_name):
        states = []
    else:
        states = registry.unit_states(machine_id=machine_id or None, unit_name=unit_name or None)
    items, next_token = page_of(states, token)
    body = [unit_state_json(s) for s in items]
    return json_response(200, page_json("states", body, next_token.encode() if next_token else None))


def get_state(registry: ApiRegistry, name: str) -> Response:
    states = registry.unit_states(unit_name=name) if is_valid_name(name) else []
    if not states:
        raise ApiError(404, "unit state does not exist")
    return json_response(200, unit_state_json(states[0]))
