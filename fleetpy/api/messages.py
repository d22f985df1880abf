"""The router's request and response values, independent of ``http.server``.

Pure. ``server`` builds a ``Request`` from the wire (path already percent-decoded, query parsed, body read within
the size limit) and writes the ``Response`` back; handlers never touch sockets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetpy.api.errors import ApiError, error_body
from fleetpy.api.schema import dumps

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    content_types: Sequence[str] = ()  # every Content-Type header, in order (fleet wants exactly one)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON


def json_response(status: int, value: Any) -> Response:
    return Response(status, dumps(value))


def no_content(status: int = 204) -> Response:
    return Response(status, b"", "")


def error_response(err: ApiError) -> Response:
    return Response(err.code, error_body(err.code, err.message))
