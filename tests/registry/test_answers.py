"""``stream_event``: one line of an etcd v2 watch stream read into an ``Event`` (table-driven, no etcd)."""

from __future__ import annotations

import json

import pytest

from fleetpy.registry.answers import stream_event
from fleetpy.registry.store import Action, Event, Node


def line(data: object) -> bytes:
    return json.dumps(data).encode() + b"\n"


@pytest.mark.parametrize(("data", "expected"), [
    ({"action": "set", "node": {"key": "/p/job/a.service/object", "value": '{"Name":"a.service"}',
                                "modifiedIndex": 7, "createdIndex": 7}},
     Event(Action.SET, Node("/p/job/a.service/object", '{"Name":"a.service"}', 7), 99)),
    ({"action": "create", "node": {"key": "/p/job/a.service/target", "value": "m1", "modifiedIndex": 8},
      "prevNode": {"key": "/p/job/a.service/target", "value": "m0", "modifiedIndex": 3}},
     Event(Action.CREATE, Node("/p/job/a.service/target", "m1", 8), 99)),
    ({"action": "expire", "node": {"key": "/p/machines/m1", "dir": True, "modifiedIndex": 9, "ttl": 0}},
     Event(Action.EXPIRE, Node("/p/machines/m1", None, 9, 0, True), 99)),
    ({"action": "set", "node": {"key": "/p/x", "value": "v", "modifiedIndex": 10, "ttl": 30}},
     Event(Action.SET, Node("/p/x", "v", 10, 30), 99)),
    ({"action": "delete", "node": {"key": "/p/x", "modifiedIndex": 11}},
     Event(Action.DELETE, Node("/p/x", "", 11), 99)),
    ({"action": "set", "node": {"key": "/p/n", "value": 5, "modifiedIndex": 12}},
     Event(Action.SET, Node("/p/n", "5", 12), 99)),
    ({"action": "someday", "node": {"key": "/p/x", "value": "v", "modifiedIndex": 13}},
     Event(Action.SET, Node("/p/x", "v", 13), 99)),
    ({"action": ["set"], "node": {"key": "/p/x", "value": "v"}},
     Event(Action.SET, Node("/p/x", "v", 0), 99)),
])
def test_a_line_reads_as_its_event(data: object, expected: Event) -> None:
    assert stream_event(line(data), 99) == expected


def test_whitespace_around_the_json_is_allowed() -> None:
    raw = b' \t{"action":"set","node":{"key":"/p/x","value":"v","modifiedIndex":1}}  \r\n'
    assert stream_event(raw, 1).node == Node("/p/x", "v", 1)


@pytest.mark.parametrize("raw", [
    b"not json",
    b"[1, 2]",
    b'{"action": "set"}',
    b'{"action": "set", "node": "x"}',
    b'{"action":"set","node":{"key":"/p/x"}} trailing',
    b'{"action":"set","node":{"key":"/p/x"}}{"action":"set","node":{"key":"/p/y"}}',
    b'{"action":"set","node":{"key":"/p/\xff"}}',
    b"",
])
def test_anything_else_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        stream_event(raw, 1)
