"""etcd v2's answers read into the store's records: a node's JSON or python-etcd's result as a ``Node``, a watch
answer as an ``Event``, and a live watch stream (``Stream``) as events, line by line.

Adapter layer under ``fleetpy.registry.etcd``; pure apart from reading the stream's connection. Every agent reads
every event of the job tree through ``stream_event``, so it is kept to a few lookups.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import urllib3

from fleetpy.errors import RegistryUnavailable
from fleetpy.registry.http import stream_lines
from fleetpy.registry.store import Action, Event, Node


class Stream:
    """A live watch stream's response (``KVStore.stream``): read line by line, one event per line."""

    def __init__(self, response: Any, prefix: str) -> None:
        self.response = response
        self.prefix = prefix
        self.opened = int(response.headers.get("x-etcd-index") or 0)
        self.quiet = False

    def __iter__(self) -> Iterator[Event]:
        try:
            for line in self._lines():
                yield stream_event(line, self.opened)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            self.quiet = True  # no event for the stream's timeout
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
            raise RegistryUnavailable(f"etcd WATCH-STREAM {self.prefix} failed: {describe(err)}") from err
        finally:
            self.close()

    def _lines(self) -> Iterator[bytes]:
        """The body's lines, read straight from the connection's buffered reader (``stream_lines``): http.client's,
        past the head, in every urllib3 fleetpy supports, plain or TLS."""
        raw: Any = getattr(getattr(self.response, "_fp", None), "fp", None)
        if not self.response.chunked or not hasattr(raw, "read1"):
            raise ValueError("the watch stream's answer is not a chunked body read as it comes")
        return stream_lines(raw.read1)

    def close(self) -> None:
        self.response.close()  # never back to the pool with a stream still coming
        self.response.release_conn()


_DECODER = json.JSONDecoder()


def stream_event(line: bytes, store_index: int) -> Event:
    """One line of a watch stream: the JSON a single watch answers (an action and a node). Decoded as text by
    the decoder itself: ``json.loads`` of the bytes first guesses their encoding and then checks for trailing
    whitespace, twice the time of the decoding (every agent reads every event of the job tree)."""
    text = line.decode("utf-8").strip()
    data, end = _DECODER.raw_decode(text)  # raises ValueError on anything but JSON...
    node = data.get("node") if isinstance(data, dict) else None
    if not isinstance(node, dict) or end != len(text):  # ...and this on more after it
        raise ValueError(f"not a watch event: {line[:80]!r}")
    return Event(action_of(data.get("action")), from_json(node), store_index)


def from_json(node: dict[str, Any]) -> Node:
    """etcd's JSON for one node, as ``node_of`` reads python-etcd's result for it."""
    ttl = node.get("ttl")
    is_dir = bool(node.get("dir"))
    value = node.get("value")
    if is_dir:
        value = None
    elif not isinstance(value, str):
        value = str(value or "")
    return Node(str(node["key"]), value, int(node.get("modifiedIndex") or 0), None if ttl is None else int(ttl),
                is_dir)


def leaves(node: dict[str, Any], out: list[Node]) -> None:
    """The leaves (keys with values) below a directory node of a recursive answer, depth first."""
    for child in node.get("nodes") or ():
        if child.get("dir"):
            leaves(child, out)
        else:
            out.append(from_json(child))


def event_of(result: Any, store_index: int) -> Event:
    return Event(action_of(result.action), node_of(result), store_index=store_index)


_ACTIONS = {action.value: action for action in Action}


def action_of(name: Any) -> Action:
    """etcd's action name; one fleetpy does not know reads as a set (a dict lookup: ``Action(name)`` costs a
    microsecond, on every event every agent reads)."""
    return _ACTIONS.get(name, Action.SET) if isinstance(name, str) else Action.SET


def node_of(result: Any) -> Node:
    value = None if result.dir else (result.value if result.value is not None else "")
    return Node(key=result.key, value=value, modified_index=int(result.modifiedIndex or 0),
                ttl=int(result.ttl) if result.ttl is not None else None, is_dir=bool(result.dir))


def describe(err: BaseException) -> str:
    if isinstance(err, urllib3.exceptions.NewConnectionError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, urllib3.exceptions.ConnectTimeoutError):
        return "connect timeout"
    if isinstance(err, urllib3.exceptions.ReadTimeoutError):
        return "read timeout"
    if isinstance(err, urllib3.exceptions.SSLError | ssl.SSLError):
        return f"TLS error: {err}"
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:200]
