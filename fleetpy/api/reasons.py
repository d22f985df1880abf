"""``/reasons``: fleetpy's scheduling reasons (``<prefix>fleetpy/reasons/<unit>``, written by the engine), so the
API driver shows what the etcd driver shows (``list-unit-files --fields reason``, ``start`` while waiting).

A fleetpy extension, not in fleet's schema or discovery document: fleetd answers it 404, which clients read as "no
reasons". Pure logic over the ``ApiRegistry`` port. Body: ``{"reasons":[{"name":..,"reason":..}]}`` sorted by name.
"""

from __future__ import annotations

from fleetpy.api.messages import Response, json_response
from fleetpy.api.port import ApiRegistry


def list_reasons(registry: ApiRegistry) -> Response:
    reasons = registry.reasons()
    return json_response(200, {"reasons": [{"name": name, "reason": reasons[name]} for name in sorted(reasons)]})
