"""Bad input never crashes the API: random paths, methods, queries and bodies get a 2xx/4xx with fleet's JSON.

Most examples go straight to the ``Router`` (fast); a few raw byte streams go through a live server, which must
keep serving afterwards.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetpy.api.messages import Request, Response
from fleetpy.api.metrics import Metrics
from fleetpy.api.routes import Router
from fleetpy.api.schema import options_from_json
from fleetpy.api.server import ApiServer
from fleetpy.model.unit import UnitFile
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry
from tests.api.conftest import Wire

METHODS = st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST", "HEAD", "OPTIONS", "FOO"])
SEGMENT = st.one_of(
    st.sampled_from(["fleet", "v1", "v1-alpha", "units", "state", "machines", "discovery", "metrics", "..", ".",
                     "", "a.service", "foo@.service", "foo@1.service"]),
    st.text(max_size=20),
)
PATHS = st.lists(SEGMENT, max_size=5).map(lambda parts: "/" + "/".join(parts)) | st.sampled_from(
    ["/fleet/v1/units", "/fleet/v1/units/a.service", "/fleet/v1/machines", "/fleet/v1/state", "/v1-alpha/units/x"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
SAFE_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="=[]\\"),
                    min_size=1, max_size=20)
GOOD_OPTIONS = st.lists(st.fixed_dictionaries({
    "section": st.sampled_from(["Service", "X-Fleet", "Unit"]),
    "name": st.sampled_from(["ExecStart", "Global", "MachineID", "Conflicts", "MachineOf", "Replaces",
                             "MachineMetadata", "Description"]),
    "value": SAFE_TEXT,
}), min_size=1, max_size=4)
ANY_OPTIONS = st.lists(st.fixed_dictionaries({}, optional={
    "section": st.text(max_size=10) | st.sampled_from(["Service", "X-Fleet"]),
    "name": st.text(max_size=10) | st.sampled_from(["ExecStart", "Global", "MachineID", "Conflicts"]),
    "value": st.text(max_size=40) | JSON_VALUES,
}), max_size=4) | JSON_VALUES
UNITISH = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=20) | st.just("a.service"),
    "desiredState": st.sampled_from(["", "inactive", "loaded", "launched", "launched", "bogus"]) | JSON_VALUES,
    "options": GOOD_OPTIONS | GOOD_OPTIONS | ANY_OPTIONS,
})
PATCHISH = st.lists(st.fixed_dictionaries({}, optional={
    "op": st.sampled_from(["add", "remove", "replace", "move"]) | JSON_VALUES,
    "path": st.text(max_size=30) | st.sampled_from(["/m1/metadata/k", "/../metadata/k", "/m1/metadata/.."]),
    "value": JSON_VALUES | st.fixed_dictionaries({"value": JSON_VALUES}),
}), max_size=4) | JSON_VALUES
BODIES = st.one_of(st.binary(max_size=200), JSON_VALUES.map(lambda v: json.dumps(v).encode()),
                   UNITISH.map(lambda v: json.dumps(v).encode()), PATCHISH.map(lambda v: json.dumps(v).encode()),
                   st.integers(1, 5000).map(lambda n: b"[" * n))
QUERIES = st.dictionaries(st.sampled_from(["nextPageToken", "machineID", "unitName", "alt", "x"]),
                          st.lists(st.text(max_size=12), min_size=1, max_size=3), max_size=3)


def _router() -> Router:
    return Router(Registry(MemoryStore()), token_limit=100, metrics=Metrics())


def _check(response: Response) -> None:
    assert response.status < 500, response.body
    if response.status >= 400:
        error: Any = json.loads(response.body)["error"]
        assert error["code"] == response.status and isinstance(error["message"], str)


@settings(max_examples=300, deadline=None)
@given(method=METHODS, path=PATHS, query=QUERIES, body=BODIES,
       content_types=st.lists(st.sampled_from(["application/json", "text/plain", "application/json; x=y"]),
                              max_size=2))
def test_router_never_fails(method: str, path: str, query: dict[str, list[str]], body: bytes,
                            content_types: list[str]) -> None:
    _check(_router().handle(Request(method, path, query, tuple(content_types), body)))


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(["a.service", "t@.service", "t@1.service"]) | st.text(max_size=30), body=UNITISH)
def test_put_units_never_fails(name: str, body: dict[str, Any]) -> None:
    router = _router()
    for _ in range(2):  # the second PUT meets an existing unit
        response = router.handle(Request("PUT", f"/fleet/v1/units/{name}", {}, ("application/json",),
                                         json.dumps(body).encode()))
        _check(response)
        if response.status == 201:  # what was stored reads back with the hash of what was sent
            stored = router.registry.unit(name)
            assert stored is not None
            assert stored.hash == UnitFile(options_from_json(body["options"])).hash


@settings(max_examples=200, deadline=None)
@given(ops=PATCHISH)
def test_patch_machines_never_fails(ops: Any) -> None:
    _check(_router().handle(Request("PATCH", "/fleet/v1/machines", {}, (), json.dumps(ops).encode())))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | st.builds(
    lambda m, p, h: f"{m} {p} HTTP/1.1\r\n{h}\r\n\r\n".encode("utf-8", "surrogateescape"),
    METHODS, st.text(max_size=40), st.text(max_size=60)))
def test_live_server_survives_garbage(memory_server: ApiServer, data: bytes) -> None:
    assert memory_server.socket_path is not None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        sock.connect(memory_server.socket_path)
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass
    assert Wire(memory_server, "unix").get("/fleet/v1/units").status == 200
