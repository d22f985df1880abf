"""The key-value port under the registry: etcd v2 semantics (CAS, TTL, recursive watch) as a Protocol.

Two implementations: ``EtcdStore`` (python-etcd against a real etcd) and ``MemoryStore`` (in-process, for fast
tests). The registry is written once over this port, so the fake cannot drift from the real thing; one contract
suite (tests/registry/test_store_contract.py) runs against both.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from fleetpy.errors import CASConflict


class Action(enum.StrEnum):
    GET = "get"
    SET = "set"
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    EXPIRE = "expire"
    COMPARE_AND_SWAP = "compareAndSwap"
    COMPARE_AND_DELETE = "compareAndDelete"

    @property
    def removes(self) -> bool:
        return self in _REMOVING  # a set: a tuple compares a StrEnum as a string, member by member


_REMOVING = frozenset({Action.DELETE, Action.EXPIRE, Action.COMPARE_AND_DELETE})


@dataclass(frozen=True, slots=True)
class Node:
    """One etcd node. ``value`` is None for directories."""

    key: str
    value: str | None
    modified_index: int
    ttl: int | None = None
    is_dir: bool = False


@dataclass(frozen=True, slots=True)
class Event:
    """One change seen by a watch. For deletes of a directory, ``node.is_dir`` is True. ``store_index``: the
    store's index when the watch answered (etcd's X-Etcd-Index; 0 when unknown): how far behind the watch is."""

    action: Action
    node: Node
    store_index: int = 0


@dataclass(frozen=True, slots=True)
class Listing:
    """A recursive read: every leaf under a prefix, sorted by key, and the store index it was read at."""

    index: int
    nodes: tuple[Node, ...]


class IndexCleared(Exception):
    """The watch index is older than the store's event history (etcd keeps 1000 events): re-read and re-watch."""


class LiveStream(Protocol):
    """A watch stream opened by ``KVStore.stream``: the changes after ``opened`` (the store's index when it
    opened), in order. ``quiet``, once iteration has ended: True when no event came for the stream's timeout,
    False when the store ended it. (etcd 3.4 stops sending to a reader that fell 100 events behind but does not
    end the response: such a stream just goes quiet.)"""

    opened: int
    quiet: bool

    def __iter__(self) -> Iterator[Event]: ...

    def close(self) -> None: ...


class KVStore(Protocol):
    """etcd v2 keys semantics. Keys are absolute paths (``/_coreos.com/fleet/job/x/object``).

    Errors: ``fleetpy.errors.NotFound`` when a key that must exist does not (get_required/delete/update),
    ``fleetpy.errors.CASConflict`` when a compare fails or a create finds the key, and
    ``fleetpy.errors.RegistryUnavailable`` when the store cannot be reached.
    """

    def get(self, key: str) -> Node | None:
        """The leaf at ``key``, or None."""
        ...

    def list(self, prefix: str) -> Listing:
        """Every leaf under ``prefix`` (recursive, sorted by key); empty when the prefix does not exist."""
        ...

    def set(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        prev_exist: bool | None = None,
        prev_value: str | None = None,
        prev_index: int | None = None,
    ) -> Node:
        """Write ``value``. ``prev_exist=False`` creates only; ``True`` updates only; ``prev_value`` and
        ``prev_index`` compare-and-swap. ``ttl`` sets an expiry in seconds (None: none)."""
        ...

    def set_many(self, groups: Sequence[Sequence[tuple[str, str]]]) -> None:
        """Plain writes (``set`` without TTL or compare) of ``(key, value)`` pairs: each group's in order, the
        groups possibly at the same time. A failure is raised once the writes under way are done: writes before
        it may have been made, writes after it may not."""
        ...

    def create_many(self, items: Sequence[tuple[str, str]]) -> Sequence[bool]:
        """Create each ``(key, value)`` (``set`` with ``prev_exist=False``), possibly several at once: per item,
        True when created, False when the key existed. Any other failure is raised once the writes under way are
        done (which of the others were made is then unknown)."""
        ...

    def refresh(self, key: str, ttl: int) -> Node:
        """Reset the TTL of an existing key without changing its value or firing watches."""
        ...

    def delete(
        self,
        key: str,
        *,
        recursive: bool = False,
        prev_value: str | None = None,
        prev_index: int | None = None,
    ) -> None:
        """Delete a key (or a directory with ``recursive``); compare-and-delete with ``prev_*``."""
        ...

    def watch(self, prefix: str, *, after_index: int, timeout: float) -> Event | None:
        """The first change under ``prefix`` with an index greater than ``after_index``, waiting at most
        ``timeout`` seconds (None on timeout). Raises IndexCleared when ``after_index`` fell out of history."""
        ...

    def stream(self, prefix: str, *, timeout: float) -> LiveStream:
        """The changes under ``prefix`` from now on, on one request (etcd's ``stream=true`` without a
        ``waitIndex``) where ``watch`` costs one per event. A stream that starts at an index in the past cannot
        stream: etcd answers it with one event from the history and never registers it, so during a burst a
        reader that asks from its own index gets one event per request and never catches up. A live stream tells
        where it starts (``opened``); the reader fills the gap from its own index up to there with ``watch``
        or one re-read. Iteration ends after ``timeout`` s without an event or when the store closes the
        stream."""
        ...

    def current_index(self) -> int:
        """The store's current index (etcd's X-Etcd-Index)."""
        ...

    def close(self) -> None:
        ...


def create_each(store: KVStore, items: Sequence[tuple[str, str]]) -> list[bool]:
    """``create_many`` as one ``set(prev_exist=False)`` after another (for stores that cannot pipeline)."""
    created: list[bool] = []
    for key, value in items:
        try:
            store.set(key, value, prev_exist=False)
        except CASConflict:
            created.append(False)
        else:
            created.append(True)
    return created
