"""``GET /fleet/v1/discovery``: the Google API discovery document describing API v1 (id ``fleet:v1``).

Pure data. The resources and schemas match what ``units``/``state``/``machines`` serve; ``rootUrl`` is the literal
``$ENDPOINT/`` placeholder fleet publishes, for clients to substitute.
"""

from __future__ import annotations

from typing import Any

from fleetpy.api.schema import dumps


def _string(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": name}


def _list(schema: str, key: str) -> dict[str, Any]:
    return {"id": schema, "type": "object",
            "properties": {key: {"type": "array", "items": _ref(schema.removesuffix("Page"))},
                           "nextPageToken": _string()}}


_QUERY_TOKEN = {"nextPageToken": _string(location="query")}
_PATH_NAME = {"unitName": _string(location="path", required=True)}

SCHEMAS: dict[str, Any] = {
    "Machine": {"id": "Machine", "type": "object", "properties": {
        "id": _string(), "primaryIP": _string(),
        "metadata": {"type": "object", "additionalProperties": _string()}}},
    "MachinePage": _list("MachinePage", "machines"),
    "UnitOption": {"id": "UnitOption", "type": "object", "properties": {
        "section": _string(), "name": _string(), "value": _string()}},
    "Unit": {"id": "Unit", "type": "object", "properties": {
        "name": _string(),
        "options": {"type": "array", "items": _ref("UnitOption")},
        "desiredState": _string(enum=["inactive", "loaded", "launched"]),
        "currentState": _string(enum=["inactive", "loaded", "launched"]),
        "machineID": _string(required=True)}},
    "UnitPage": _list("UnitPage", "units"),
    "UnitState": {"id": "UnitState", "type": "object", "properties": {
        "name": _string(), "hash": _string(), "machineID": _string(),
        "systemdLoadState": _string(), "systemdActiveState": _string(), "systemdSubState": _string()}},
    "UnitStatePage": _list("UnitStatePage", "states"),
}

RESOURCES: dict[str, Any] = {
    "Machines": {"methods": {
        "List": {"id": "fleet.Machine.List", "description": "Retrieve a page of Machine objects.",
                 "httpMethod": "GET", "path": "machines", "parameters": _QUERY_TOKEN,
                 "response": _ref("MachinePage")}}},
    "Units": {"methods": {
        "List": {"id": "fleet.Unit.List", "description": "Retrieve a page of Unit objects.",
                 "httpMethod": "GET", "path": "units", "parameters": _QUERY_TOKEN, "response": _ref("UnitPage")},
        "Get": {"id": "fleet.Unit.Get", "description": "Retrieve a single Unit object.",
                "httpMethod": "GET", "path": "units/{unitName}", "parameters": _PATH_NAME,
                "parameterOrder": ["unitName"], "response": _ref("Unit")},
        "Delete": {"id": "fleet.Unit.Delete", "description": "Delete the referenced Unit object.",
                   "httpMethod": "DELETE", "path": "units/{unitName}", "parameters": _PATH_NAME,
                   "parameterOrder": ["unitName"]},
        "Set": {"id": "fleet.Unit.Set", "description": "Create or update a Unit.",
                "httpMethod": "PUT", "path": "units/{unitName}", "parameters": _PATH_NAME,
                "parameterOrder": ["unitName"], "request": _ref("Unit")}}},
    "UnitState": {"methods": {
        "List": {"id": "fleet.UnitState.List", "description": "Retrieve a page of UnitState objects.",
                 "httpMethod": "GET", "path": "state",
                 "parameters": {**_QUERY_TOKEN, "unitName": _string(location="query"),
                                "machineID": _string(location="query")},
                 "response": _ref("UnitStatePage")}}},
}

DOCUMENT: dict[str, Any] = {
    "kind": "discovery#restDescription",
    "discoveryVersion": "v1",
    "id": "fleet:v1",
    "name": "schema",
    "version": "v1",
    "title": "fleet API",
    "description": "",
    "documentationLink": "http://github.com/coreos/fleet",
    "protocol": "rest",
    "icons": {"x16": "", "x32": ""},
    "labels": [],
    "baseUrl": "$ENDPOINT/fleet/v1/",
    "basePath": "/fleet/v1/",
    "rootUrl": "$ENDPOINT/",
    "servicePath": "fleet/v1/",
    "batchPath": "batch",
    "parameters": {},
    "auth": {},
    "schemas": SCHEMAS,
    "resources": RESOURCES,
}

BODY = dumps(DOCUMENT)
