"""Every route and error case of API v1 over real HTTP: unix socket and TCP, MemoryStore and a real etcd.

Expected codes and messages are fleet's (fleet-reference.md 4.6, fleet ``api/*.go``).
"""

from __future__ import annotations

from typing import Any

import pytest

from fleetpy.model.records import JobState, MachineState, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry.registry import Registry
from tests.api.conftest import HELLO, Wire, make_unit

M1 = "c7ed6cafe52543569dbc19ca848b3b1d"
M2 = "07c7d51f3c55453792355a6c01d3e3b0"
OPTIONS = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep 100"}]
PREFIXES = ["/fleet/v1", "/v1-alpha"]


def _launch_body(**extra: Any) -> dict[str, Any]:
    return {"desiredState": "launched", "options": OPTIONS, **extra}


# -- root, prefixes, unknown paths, headers --------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/fleet/v1", "/v1-alpha"])
def test_root_and_bare_prefixes_are_405(wire: Wire, path: str) -> None:
    reply = wire.get(path)
    assert reply.status == 405
    assert reply.error == (405, "")
    assert reply.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", ["/nope", "/fleet/v1/", "/fleet/v1/nope", "/fleet/v1/units/", "/fleet/v1/units/a/b",
                                  "/fleet/v1/machines/x", "/fleet/v1/discovery/x", "/fleet/v1x/units",
                                  "/fleet/v1/units/..", "/fleet/v1/state/a/b", "/fleet/v1/units/yes%2Fno.service"])
def test_unknown_paths_are_404(wire: Wire, path: str) -> None:
    reply = wire.get(path)
    assert reply.status == 404 and reply.error == (404, "")


@pytest.mark.parametrize("prefix", PREFIXES)
def test_reasons_extension(wire: Wire, registry: Registry, prefix: str) -> None:
    """fleetpy's own route: the engine's scheduling reasons, sorted by unit name (fleetd answers it 404)."""
    assert wire.get(f"{prefix}/reasons").body == b'{"reasons":[]}'
    registry.set_reason("web@2.service", "conflicts with web@1.service")
    registry.set_reason("b<&>.service", "no machine")
    reply = wire.get(f"{prefix}/reasons")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"reasons": [{"name": "b<&>.service", "reason": "no machine"},
                                        {"name": "web@2.service", "reason": "conflicts with web@1.service"}]}
    refused = wire.put(f"{prefix}/reasons", {})
    assert refused.error == (405, "only GET supported against this resource")
    assert wire.get(f"{prefix}/reasons/x").status == 404


def test_server_header_is_fleetd_style(wire: Wire) -> None:
    for path in ("/", "/fleet/v1/units", "/metrics", "/nope"):
        assert wire.get(path).headers["Server"] == "fleetd/9.9.9"


# -- units ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", PREFIXES)
def test_unit_lifecycle(wire: Wire, registry: Registry, prefix: str) -> None:
    assert wire.get(f"{prefix}/units").json() == {}
    created = wire.put(f"{prefix}/units/hello.service", _launch_body())
    assert created.status == 201 and created.body == b""
    stored = registry.unit("hello.service")
    assert stored is not None and stored.hash == HELLO.hash and stored.target_state is JobState.LAUNCHED

    listed = wire.get(f"{prefix}/units?alt=json")
    assert listed.status == 200
    assert listed.body == (b'{"units":[{"currentState":"inactive","desiredState":"launched","name":"hello.service",'
                           b'"options":[{"name":"ExecStart","section":"Service","value":"/bin/sleep 100"}]}]}')
    single = wire.get(f"{prefix}/units/hello.service").json()
    assert single == {"currentState": "inactive", "desiredState": "launched", "name": "hello.service",
                      "options": OPTIONS}

    assert wire.put(f"{prefix}/units/hello.service", {"desiredState": "loaded"}).status == 204
    assert registry.unit("hello.service").target_state is JobState.LOADED  # type: ignore[union-attr]
    assert wire.request("DELETE", f"{prefix}/units/hello.service").status == 204
    assert registry.unit("hello.service") is None
    gone = wire.request("DELETE", f"{prefix}/units/hello.service")
    assert gone.status == 404 and gone.error == (404, "unit does not exist")


def test_get_missing_unit_is_404(wire: Wire) -> None:
    for name in ("missing.service", "not a name", "foo"):
        reply = wire.get(f"/fleet/v1/units/{name.replace(' ', '%20')}")
        assert reply.status == 404 and reply.error == (404, "unit does not exist")


def test_scheduled_unit_shows_machine_and_current_state(wire: Wire, registry: Registry) -> None:
    registry.create_unit(make_unit())
    registry.schedule_unit("hello.service", M1)
    registry.save_unit_state(UnitState("hello.service", M1, "loaded", "active", "running", HELLO.hash), ttl=30)
    registry.unit_heartbeat("hello.service", M1, ttl=30)
    expected = {"currentState": "launched", "desiredState": "launched", "machineID": M1, "name": "hello.service"}
    single = wire.get("/fleet/v1/units/hello.service").json()
    assert {k: single[k] for k in expected} == expected
    listed = wire.get("/fleet/v1/units").json()["units"][0]
    assert {k: listed[k] for k in expected} == expected


def test_global_unit_has_no_state_on_get_and_inactive_in_lists(wire: Wire, registry: Registry) -> None:
    registry.create_unit(make_unit("g.service", uf=UnitFile.parse("[Service]\nExecStart=/bin/true\n"
                                                                  "[X-Fleet]\nGlobal=true\n")))
    single = wire.get("/fleet/v1/units/g.service").json()
    assert "currentState" not in single and "machineID" not in single
    assert wire.get("/fleet/v1/units").json()["units"][0]["currentState"] == "inactive"


def test_escaped_unit_names_in_paths(wire: Wire, registry: Registry) -> None:
    """fleet's Go client QueryEscapes the name (``@`` -> %40, ``\\`` -> %5C)."""
    assert wire.put("/fleet/v1/units/yes%40no%5C.service", _launch_body()).status == 201
    assert registry.unit("yes@no\\.service") is not None
    assert wire.get("/fleet/v1/units/yes@no%5C.service").json()["name"] == "yes@no\\.service"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        pytest.param({"desiredState": "launched"}, 409, "unit does not exist and options field empty", id="no-options"),
        pytest.param({"name": "other.service", **_launch_body()}, 400,
                     'name in URL "hello.service" differs from unit name in request body "other.service"',
                     id="name-mismatch"),
        pytest.param(b"", 400, "unable to decode body: EOF", id="empty-body"),
        pytest.param(b"{not json", 400, None, id="garbage"),
        pytest.param({"options": "x"}, 400, None, id="options-not-a-list"),
        pytest.param({"options": [{"section": 1}]}, 400, None, id="option-field-type"),
        pytest.param({"desiredState": "running", "options": OPTIONS}, 400, None, id="bad-desired-state"),
        pytest.param({"options": [*OPTIONS, {"section": "X-Fleet", "name": "MachineID", "value": "a"},
                                  {"section": "X-Fleet", "name": "Global", "value": "true"}]},
                     400, "MachineID cannot be used with Global", id="requirements"),
        pytest.param({"options": [{"section": "X-Fleet", "name": "MachineOf", "value": "a.service"},
                                  {"section": "X-Fleet", "name": "Conflicts", "value": "a*"}]},
                     400, 'unresolvable requirements: peer "a.service" matches conflict "a*"', id="peer-conflict"),
        pytest.param({"options": [{"section": "Service", "name": "ExecStart", "value": "x" * 3000}]}, 400, None,
                     id="line-too-long"),
        pytest.param({"options": [{"section": "", "name": "A", "value": "b"}]}, 400, None, id="empty-section"),
        pytest.param({"options": [{"section": "Service", "name": "A", "value": " padded "}]}, 400, None,
                     id="not-canonical"),
    ],
)
def test_put_new_unit_errors(wire: Wire, registry: Registry, body: Any, code: int, message: str | None) -> None:
    reply = wire.put("/fleet/v1/units/hello.service", body)
    assert reply.status == code, reply.body
    assert reply.error[0] == code
    if message is not None:
        assert reply.error[1] == message
    assert registry.unit("hello.service") is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("foo", 'unit name must contain "."'),
        ("foo.servICE", 'invalid unit type: "servICE"'),
        ("foo@1.mount", 'invalid unit type for template: "mount"'),
        ("@foo.service", 'unit name cannot start in "@"'),
        ("a%20b.service", "invalid character ' ' in unit name"),
    ],
)
def test_put_invalid_name_is_400(wire: Wire, name: str, message: str) -> None:
    reply = wire.put(f"/fleet/v1/units/{name}", _launch_body())
    assert reply.status == 400 and reply.error == (400, message)


def test_put_existing_unit(wire: Wire, registry: Registry) -> None:
    registry.create_unit(make_unit(state=JobState.INACTIVE))
    missing = wire.put("/fleet/v1/units/hello.service", {})
    assert missing.status == 409 and missing.error == (409, "must provide DesiredState to update existing unit")
    same = wire.put("/fleet/v1/units/hello.service", {"options": OPTIONS})  # same hash, no state: still 409
    assert same.status == 409
    assert wire.put("/fleet/v1/units/hello.service", {"options": OPTIONS, "desiredState": "loaded"}).status == 204
    assert registry.unit("hello.service").target_state is JobState.LOADED  # type: ignore[union-attr]
    bad = wire.put("/fleet/v1/units/hello.service", {"desiredState": "sideways"})
    assert bad.status == 400


def test_put_existing_unit_with_new_options_replaces_it(wire: Wire, registry: Registry) -> None:
    registry.create_unit(make_unit())
    new_options = [{"section": "Service", "name": "ExecStart", "value": "/bin/sleep 5"}]
    reply = wire.put("/fleet/v1/units/hello.service", {"options": new_options, "desiredState": "launched"})
    assert reply.status == 201
    replaced = registry.unit("hello.service")
    assert replaced is not None and replaced.hash == UnitFile.parse("[Service]\nExecStart=/bin/sleep 5\n").hash


def test_template_cannot_be_activated(wire: Wire, registry: Registry) -> None:
    registry.create_unit(make_unit("foo@.service", state=JobState.INACTIVE))
    reply = wire.put("/fleet/v1/units/foo@.service", {"desiredState": "launched"})
    assert reply.status == 400 and reply.error == (400, 'cannot activate template "foo@.service"')
    assert wire.put("/fleet/v1/units/foo@.service", {"desiredState": "inactive"}).status == 204
    new = wire.put("/fleet/v1/units/bar@.service", _launch_body())
    assert new.status == 400 and new.error == (400, 'cannot activate template "bar@.service"')
    assert wire.put("/fleet/v1/units/bar@1.service", _launch_body()).status == 201


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({"Content-Type": "application/xml"}, "only acceptable Content-Type is application/json",
                     id="xml"),
        pytest.param({"Content-Type": "text/plain; charset=utf-8"}, "only acceptable Content-Type is application/json",
                     id="text"),
    ],
)
def test_put_content_type_415(wire: Wire, headers: dict[str, str], message: str) -> None:
    reply = wire.put("/fleet/v1/units/hello.service", _launch_body(), headers=headers)
    assert reply.status == 415 and reply.error == (415, message)


def test_put_content_type_must_be_exactly_one(wire: Wire) -> None:
    none = wire.put("/fleet/v1/units/hello.service", _launch_body(), json_body=False)
    assert none.status == 415 and none.error == (415, "expected 1 Content-Type, got 0")
    conn = wire.connection()
    conn.putrequest("PUT", "/fleet/v1/units/hello.service")
    body = b'{"desiredState":"launched"}'
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    assert resp.status == 415 and b"expected 1 Content-Type, got 2" in resp.read()
    conn.close()
    params = wire.put("/fleet/v1/units/hello.service", _launch_body(),
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert params.status == 201


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("POST", "/fleet/v1/units", "only GET supported against this resource"),
        ("DELETE", "/fleet/v1/units", "only GET supported against this resource"),
        ("POST", "/fleet/v1/units/a.service", "only GET, PUT and DELETE supported against this resource"),
        ("PATCH", "/v1-alpha/units/a.service", "only GET, PUT and DELETE supported against this resource"),
        ("PUT", "/fleet/v1/state", "only GET supported against this resource"),
        ("DELETE", "/fleet/v1/state/a.service", "only GET supported against this resource"),
        ("DELETE", "/fleet/v1/machines", "only GET and PATCH supported against this resource"),
        ("HEAD", "/fleet/v1/units", None),
    ],
)
def test_wrong_methods_are_405(wire: Wire, method: str, path: str, message: str | None) -> None:
    reply = wire.request(method, path)
    assert reply.status == 405
    if message is not None:
        assert reply.error == (405, message)
    else:
        assert reply.body == b""  # HEAD: no body, headers only


def test_discovery(wire: Wire) -> None:
    doc = wire.get("/fleet/v1/discovery").json()
    assert doc["id"] == "fleet:v1" and doc["rootUrl"] == "$ENDPOINT/"
    assert set(doc["resources"]) == {"Machines", "Units", "UnitState"}
    assert wire.get("/v1-alpha/discovery").status == 200
    post = wire.request("POST", "/fleet/v1/discovery")
    assert post.status == 400 and post.error == (400, "only HTTP GET supported against this resource")


# -- state ----------------------------------------------------------------------------------------------------
def _states(registry: Registry) -> None:
    for name in ("a.service", "b.service"):
        registry.create_unit(make_unit(name))
        for machine in (M1, M2):
            registry.save_unit_state(UnitState(name, machine, "loaded", "active", "running", HELLO.hash), ttl=60)


def test_state_list_and_filters(wire: Wire, registry: Registry) -> None:
    _states(registry)
    states = wire.get("/fleet/v1/state").json()["states"]
    assert [(s["name"], s["machineID"]) for s in states] == [
        ("a.service", M2), ("a.service", M1), ("b.service", M2), ("b.service", M1)]
    assert states[0] == {"hash": HELLO.hash, "machineID": M2, "name": "a.service", "systemdActiveState": "active",
                         "systemdLoadState": "loaded", "systemdSubState": "running"}
    by_machine = wire.get(f"/fleet/v1/state?machineID={M1}").json()["states"]
    assert {s["machineID"] for s in by_machine} == {M1} and len(by_machine) == 2
    by_unit = wire.get("/fleet/v1/state?unitName=b.service").json()["states"]
    assert {s["name"] for s in by_unit} == {"b.service"} and len(by_unit) == 2
    both = wire.get(f"/fleet/v1/state?unitName=b.service&machineID={M2}").json()["states"]
    assert [(s["name"], s["machineID"]) for s in both] == [("b.service", M2)]
    assert wire.get("/fleet/v1/state?unitName=nope.service").json() == {}
    assert wire.get("/fleet/v1/state?unitName=../machines").json() == {}
    assert wire.get("/fleet/v1/state?nextPageToken=ZAAAAA==").status == 400


def test_state_of_one_unit(wire: Wire, registry: Registry) -> None:
    _states(registry)
    one = wire.get("/fleet/v1/state/a.service")
    assert one.status == 200 and one.json()["name"] == "a.service"
    for name in ("missing.service", "bad"):
        reply = wire.get(f"/fleet/v1/state/{name}")
        assert reply.status == 404 and reply.error == (404, "unit state does not exist")


# -- machines -------------------------------------------------------------------------------------------------
def test_machines_list_and_patch(wire: Wire, registry: Registry) -> None:
    registry.create_machine_state(MachineState(M1, "10.0.0.1", {"ping": "pong"}), ttl=60)
    registry.create_machine_state(MachineState(M2), ttl=60)
    assert wire.get("/fleet/v1/machines").body == (
        f'{{"machines":[{{"id":"{M2}"}},{{"id":"{M1}","metadata":{{"ping":"pong"}},"primaryIP":"10.0.0.1"}}]}}'
    ).encode()
    ops = [{"op": "add", "path": f"/{M2}/metadata/role", "value": {"value": "db"}},
           {"op": "replace", "path": f"/{M1}/metadata/ping", "value": {"value": "pang"}}]
    assert wire.request("PATCH", "/fleet/v1/machines", ops).status == 204
    machines = {m["id"]: m for m in wire.get("/fleet/v1/machines").json()["machines"]}
    assert machines[M2]["metadata"] == {"role": "db"} and machines[M1]["metadata"] == {"ping": "pang"}
    remove = [{"op": "remove", "path": f"/{M1}/metadata/ping"}]
    assert wire.request("PATCH", "/fleet/v1/machines", remove).status == 204
    assert "metadata" not in {m["id"]: m for m in wire.get("/fleet/v1/machines").json()["machines"]}[M1]


def test_patch_accepts_the_documented_bare_value_and_unregistered_machines(wire: Wire, registry: Registry) -> None:
    registry.create_machine_state(MachineState(M1), ttl=60)
    ops = [{"op": "add", "path": f"/{M1}/metadata/az", "value": "b"},
           {"op": "add", "path": "/ghost/metadata/x", "value": {"value": "y"}}]
    assert wire.request("PATCH", "/fleet/v1/machines", ops).status == 204
    assert registry.machine(M1).metadata == {"az": "b"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        pytest.param([{"op": "move", "path": f"/{M1}/metadata/a", "value": {"value": "b"}}],
                     "invalid op: expect add, remove, or replace", id="bad-op"),
        pytest.param([{"op": "add", "path": f"/{M1}/meta/a", "value": {"value": "b"}}],
                     "machine metadata path invalid", id="bad-path"),
        pytest.param([{"op": "add", "path": f"/{M1}/metadata/a b", "value": {"value": "b"}}],
                     "machine metadata path invalid", id="bad-key"),
        pytest.param([{"op": "add", "path": "/../metadata/a", "value": {"value": "b"}}],
                     "machine metadata path invalid", id="dotdot-id"),
        pytest.param([{"op": "add", "path": f"/{M1}/metadata/a\n", "value": {"value": "b"}}],
                     "machine metadata path invalid", id="trailing-newline"),
        pytest.param([{"op": "add", "path": f"/{M1}/metadata/a", "value": {"value": ""}}],
                     "invalid value: add and replace require a value", id="empty-value"),
        pytest.param([{"op": "replace", "path": f"/{M1}/metadata/a"}],
                     "invalid value: add and replace require a value", id="no-value"),
        pytest.param([{"op": "add", "path": f"/{M1}/metadata/ok", "value": {"value": "1"}}, {"op": "nope"}],
                     "invalid op: expect add, remove, or replace", id="validated-before-applying"),
        pytest.param({"op": "add"}, None, id="not-a-list"),
        pytest.param([{"op": "add", "path": f"/{M1}/metadata/a", "value": {"value": 5}}], None, id="value-type"),
    ],
)
def test_patch_errors_are_400_and_apply_nothing(wire: Wire, registry: Registry, ops: Any, message: str | None
                                                ) -> None:
    registry.create_machine_state(MachineState(M1), ttl=60)
    reply = wire.request("PATCH", "/fleet/v1/machines", ops)
    assert reply.status == 400 and reply.error[0] == 400
    if message is not None:
        assert reply.error[1] == message
    assert registry.machine(M1).metadata == {}  # type: ignore[union-attr]


def test_machines_pagination_token_checked(wire: Wire) -> None:
    reply = wire.get("/fleet/v1/machines?nextPageToken=EwBMLg==")
    assert reply.status == 400 and reply.error == (400, "token limit must be 100")
