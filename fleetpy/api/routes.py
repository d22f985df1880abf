"""The router: a ``Request`` in, a ``Response`` out, with fleet's paths, methods, codes and messages.

No sockets here; registry calls are the only I/O (through the handlers). Every route exists under ``/fleet/v1`` and
``/v1-alpha``; ``/`` and the bare prefixes answer 405, unknown paths 404, ``/metrics`` serves Prometheus text.
``/reasons`` is fleetpy's own (scheduling reasons, see ``fleetpy.api.reasons``).
Registry failures become a 500 with an empty message (fleet's), logged once here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fleetpy.api import discovery, machines, reasons, state, units
from fleetpy.api.errors import ApiError
from fleetpy.api.messages import Request, Response, error_response
from fleetpy.api.metrics import Metrics
from fleetpy.api.port import ApiRegistry

log = logging.getLogger("fleetpy.api")

PREFIXES = ("/fleet/v1", "/v1-alpha")
UNAVAILABLE = "fleet server unable to communicate with etcd"


def _only(allowed: str) -> ApiError:
    return ApiError(405, f"only {allowed} supported against this resource")


class Router:
    def __init__(self, registry: ApiRegistry, *, token_limit: int, metrics: Metrics,
                 available: Callable[[], bool] = lambda: True) -> None:
        if not 0 < token_limit <= 0xFFFF:
            raise ValueError(f"token_limit must be between 1 and 65535, not {token_limit}")
        self.registry = registry
        self.token_limit = token_limit
        self.metrics = metrics
        self.available = available

    def handle(self, request: Request) -> Response:
        try:
            if not self.available():
                raise ApiError(503, UNAVAILABLE)
            return self.route(request)
        except ApiError as err:
            return error_response(err)
        except Exception as err:
            log.warning("API %s %s failed: %s: %s", request.method, request.path, type(err).__name__, err)
            return error_response(ApiError(500))

    def route(self, request: Request) -> Response:
        path = request.path
        if path == "/":
            raise ApiError(405)
        if path == "/metrics":
            return Response(200, self.metrics.render(), self.metrics.content_type)
        for prefix in PREFIXES:
            if path == prefix:
                raise ApiError(405)
            if path.startswith(prefix + "/"):
                return self.resource(request, path[len(prefix) + 1:].split("/"))
        raise ApiError(404)

    def resource(self, request: Request, parts: list[str]) -> Response:
        method, reg, limit = request.method, self.registry, self.token_limit
        if any(p in (".", "..") for p in parts):
            raise ApiError(404)
        head, rest = parts[0], parts[1:]
        if head == "discovery" and not rest:
            if method != "GET":
                raise ApiError(400, "only HTTP GET supported against this resource")
            return Response(200, discovery.BODY)
        if head == "machines" and not rest:
            if method == "GET":
                return machines.list_machines(reg, request, limit)
            if method == "PATCH":
                return machines.patch_machines(reg, request)
            raise _only("GET and PATCH")
        if head == "units" and not rest:
            if method != "GET":
                raise _only("GET")
            return units.list_units(reg, request, limit)
        if head == "units" and len(rest) == 1 and rest[0]:
            if method == "GET":
                return units.get_unit(reg, rest[0])
            if method == "PUT":
                return units.put_unit(reg, rest[0], request)
            if method == "DELETE":
                return units.delete_unit(reg, rest[0])
            raise _only("GET, PUT and DELETE")
        if head == "state" and not rest:
            if method != "GET":
                raise _only("GET")
            return state.list_states(reg, request, limit)
        if head == "state" and len(rest) == 1 and rest[0]:
            if method != "GET":
                raise _only("GET")
            return state.get_state(reg, rest[0])
        if head == "reasons" and not rest:  # fleetpy's extension (fleetd: 404)
            if method != "GET":
                raise _only("GET")
            return reasons.list_reasons(reg)
        raise ApiError(404)
