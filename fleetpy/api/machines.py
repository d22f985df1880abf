"""``/machines``: the paginated machine list and the metadata PATCH (fleet ``api/machines.go``).

Pure logic over the ``ApiRegistry`` port. PATCH takes a JSON-Patch-like list; the real wire format (fleet's code and
tests, not its docs) nests the value: ``{"op": "add", "path": "/<id>/metadata/<key>", "value": {"value": "x"}}``.
fleetpy also accepts the documented bare string ``"value": "x"``. Every op is validated before any is applied;
``remove`` stores the ``""`` tombstone. ``.`` and ``..`` are refused as IDs and keys (they would escape the
machine's directory in etcd).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from fleetpy.api.errors import ApiError
from fleetpy.api.messages import Request, Response, json_response, no_content
from fleetpy.api.pagination import find_token, page_of
from fleetpy.api.port import ApiRegistry
from fleetpy.api.schema import machine_json, page_json

METADATA_PATH = re.compile(r"/([^/]+)/metadata/([A-Za-z0-9_.-]+)")  # used with fullmatch
OPS = ("add", "remove", "replace")


def list_machines(registry: ApiRegistry, request: Request, token_limit: int) -> Response:
    token = find_token(request.query, token_limit)
    items, next_token = page_of(registry.machines(), token)
    body = [machine_json(m) for m in items]
    return json_response(200, page_json("machines", body, next_token.encode() if next_token else None))


def _lookup(obj: Mapping[str, Any], key: str) -> Any:
    """Go's encoding/json matches field names case-insensitively (an exact match wins)."""
    if key in obj:
        return obj[key]
    return next((v for k, v in obj.items() if k.lower() == key.lower()), None)


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, f"json: cannot unmarshal {type(value).__name__} into Go struct field {what} of type "
                            "string")
    return value


def _op_value(raw: Any) -> str:
    if isinstance(raw, dict):
        return _string(_lookup(raw, "value"), "machineMetadataOp.value.value")
    return _string(raw, "machineMetadataOp.value")


def parse_ops(body: bytes) -> list[tuple[str, str, str, str]]:
    """-> [(op, machine ID, key, value)], all validated; ApiError(400) with fleet's message otherwise."""
    if not body.strip():
        raise ApiError(400, "EOF")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise ApiError(400, str(err)) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise ApiError(400, f"json: cannot unmarshal {type(data).__name__} into Go value of type "
                            "[]api.machineMetadataOp")
    out = []
    for item in data:
        if item is None:
            item = {}
        if not isinstance(item, dict):
            raise ApiError(400, f"json: cannot unmarshal {type(item).__name__} into Go value of type "
                                "api.machineMetadataOp")
        op = _string(_lookup(item, "op"), "machineMetadataOp.op")
        path = _string(_lookup(item, "path"), "machineMetadataOp.path")
        value = _op_value(_lookup(item, "value"))
        if op not in OPS:
            raise ApiError(400, "invalid op: expect add, remove, or replace")
        match = METADATA_PATH.fullmatch(path)
        if match is None or match.group(1) in (".", "..") or match.group(2) in (".", ".."):
            raise ApiError(400, "machine metadata path invalid")
        if op != "remove" and not value:
            raise ApiError(400, "invalid value: add and replace require a value")
        out.append((op, match.group(1), match.group(2), value))
    return out


def patch_machines(registry: ApiRegistry, request: Request) -> Response:
    for op, machine_id, key, value in parse_ops(request.body):
        registry.set_machine_metadata(machine_id, key, "" if op == "remove" else value)
    return no_content()
