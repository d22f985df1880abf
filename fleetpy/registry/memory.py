"""``MemoryStore``: an in-process KVStore with etcd v2 semantics, for fast tests of everything above the store.

Complete, not partial: CAS on existence, value and index; TTLs driven by an injectable clock; recursive deletes;
watches over a bounded event history (1000 events, like etcd) that raise IndexCleared when outrun. The same
contract suite runs against it and against a real etcd.
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from fleetpy.errors import CASConflict, NotFound
from fleetpy.registry.store import Action, Event, IndexCleared, Listing, Node, create_each

HISTORY = 1000


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Condition()
        self._data: dict[str, tuple[str, int, float | None]] = {}  # key -> (value, modified index, expiry)
        self._sorted: list[str] = []
        self._index = 1
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self.closed = False

    # -- internals (lock held) ----------------------------------------------------------------------------
    def _expire(self) -> None:
        now = self._clock()
        expired = [k for k, (_, _, exp) in self._data.items() if exp is not None and exp <= now]
        for key in sorted(expired):
            self._remove(key)
            self._record(Action.EXPIRE, Node(key, None, self._index))

    def _remove(self, key: str) -> None:
        del self._data[key]
        i = bisect.bisect_left(self._sorted, key)
        del self._sorted[i]

    def _record(self, action: Action, node: Node) -> None:
        self._history.append(Event(action, node))
        self._lock.notify_all()

    def _bump(self) -> int:
        self._index += 1
        return self._index

    def _node(self, key: str) -> Node | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, index, expiry = item
        ttl = None if expiry is None else max(1, round(expiry - self._clock()))
        return Node(key, value, index, ttl)

    def _under(self, prefix: str) -> list[str]:
        prefix = prefix.rstrip("/")
        start = bisect.bisect_left(self._sorted, prefix)
        out = []
        for key in self._sorted[start:]:
            if key == prefix or key.startswith(prefix + "/"):
                out.append(key)
            elif not key.startswith(prefix):
                break
        return out

    def _is_dir(self, key: str) -> bool:
        key = key.rstrip("/")
        return any(k != key for k in self._under(key))

    # -- KVStore ------------------------------------------------------------------------------------------
    def get(self, key: str) -> Node | None:
        with self._lock:
            self._expire()
            return self._node(key)

    def list(self, prefix: str) -> Listing:
        with self._lock:
            self._expire()
            nodes = tuple(n for k in self._under(prefix) if (n := self._node(k)) is not None)
            return Listing(self._index, nodes)

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
        with self._lock:
            self._expire()
            if self._is_dir(key):
                raise CASConflict(f"{key}: is a directory")
            current = self._data.get(key)
            if prev_exist is False and current is not None:
                raise CASConflict(f"{key}: already exists")
            if current is None and (prev_exist is True or prev_value is not None or prev_index is not None):
                raise NotFound(f"{key}: key not found")
            if current is not None:
                if prev_value is not None and current[0] != prev_value:
                    raise CASConflict(f"{key}: compare failed")
                if prev_index is not None and current[1] != prev_index:
                    raise CASConflict(f"{key}: compare failed")
            index = self._bump()
            expiry = None if ttl is None else self._clock() + ttl
            if current is None:
                bisect.insort(self._sorted, key)
            self._data[key] = (value, index, expiry)
            if prev_value is not None or prev_index is not None:
                action = Action.COMPARE_AND_SWAP
            elif prev_exist is False:
                action = Action.CREATE
            elif prev_exist is True:
                action = Action.UPDATE
            else:
                action = Action.SET
            node = Node(key, value, index, ttl)
            self._record(action, node)
            return node

    def set_many(self, groups: Sequence[Sequence[tuple[str, str]]]) -> None:
        for group in groups:
            for key, value in group:
                self.set(key, value)

    def create_many(self, items: Sequence[tuple[str, str]]) -> Sequence[bool]:
        return create_each(self, items)

    def refresh(self, key: str, ttl: int) -> Node:
        with self._lock:
            self._expire()
            current = self._data.get(key)
            if current is None:
                raise NotFound(f"{key}: key not found")
            index = self._bump()
            self._data[key] = (current[0], index, self._clock() + ttl)
            return Node(key, current[0], index, ttl)  # a refresh fires no watch, as in etcd

    def delete(
        self,
        key: str,
        *,
        recursive: bool = False,
        prev_value: str | None = None,
        prev_index: int | None = None,
    ) -> None:
        with self._lock:
            self._expire()
            key = key.rstrip("/")
            if key in self._data:
                value, index, _ = self._data[key]
                if prev_value is not None and value != prev_value:
                    raise CASConflict(f"{key}: compare failed")
                if prev_index is not None and index != prev_index:
                    raise CASConflict(f"{key}: compare failed")
                self._remove(key)
                compare = prev_value is not None or prev_index is not None
                self._record(Action.COMPARE_AND_DELETE if compare else Action.DELETE,
                             Node(key, None, self._bump()))
                return
            under = self._under(key)
            if not under:
                raise NotFound(f"{key}: key not found")
            if not recursive:
                raise CASConflict(f"{key}: is a directory")
            for k in under:
                self._remove(k)
            self._record(Action.DELETE, Node(key, None, self._bump(), is_dir=True))

    def watch(self, prefix: str, *, after_index: int, timeout: float) -> Event | None:
        prefix = prefix.rstrip("/")
        deadline = self._clock() + timeout if timeout else None
        real_deadline = time.monotonic() + timeout if timeout else None
        with self._lock:
            while True:
                self._expire()
                if self._history and after_index + 1 < self._history[0].node.modified_index and \
                        after_index < self._index - HISTORY:
                    raise IndexCleared(f"index {after_index} cleared (history starts at "
                                       f"{self._history[0].node.modified_index})")
                for event in self._history:
                    key = event.node.key
                    if event.node.modified_index > after_index and (
                        key == prefix or key.startswith(prefix + "/") or prefix.startswith(key + "/")
                    ):
                        return dataclasses.replace(event, store_index=self._index)  # as etcd's X-Etcd-Index
                if self.closed:
                    return None
                if real_deadline is not None:
                    remaining = real_deadline - time.monotonic()
                    if remaining <= 0 or (deadline is not None and self._clock() >= deadline):
                        return None
                    self._lock.wait(min(remaining, 0.05))
                else:
                    self._lock.wait(0.05)

    def stream(self, prefix: str, *, timeout: float) -> _Stream:
        """``watch`` in a loop from the current index."""
        return _Stream(self, prefix, self.current_index(), timeout)

    def current_index(self) -> int:
        with self._lock:
            return self._index

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._lock.notify_all()


class _Stream:
    """A live stream of a MemoryStore (``KVStore.stream``)."""

    def __init__(self, store: MemoryStore, prefix: str, opened: int, timeout: float) -> None:
        self.store = store
        self.prefix = prefix
        self.opened = opened
        self.timeout = timeout
        self.quiet = False
        self._closed = False

    def __iter__(self) -> Iterator[Event]:
        after = self.opened
        while not self._closed:
            event = self.store.watch(self.prefix, after_index=after, timeout=self.timeout)
            if event is None:
                self.quiet = True  # (a closed store too: its watches answer None at once)
                return
            yield dataclasses.replace(event, store_index=self.opened)
            after = event.node.modified_index

    def close(self) -> None:
        self._closed = True
