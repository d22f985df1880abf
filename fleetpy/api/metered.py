"""``MeteredStore``: a KVStore wrapper that feeds ``fleet_registry_operation_*`` for every store call.

Adapter decorator, no I/O of its own. Operations are labelled as fleet labels them (``get``, ``set``, ``get_all``)
plus ``delete`` and ``refresh``; watches are long polls and are not timed. A ``NotFound`` from a get-style call
or a lost compare-and-swap is an answer, not a failure, so only other errors count as failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from fleetpy.api.metrics import Metrics
from fleetpy.errors import CASConflict, NotFound
from fleetpy.registry.store import Event, KVStore, Listing, LiveStream, Node

T = TypeVar("T")


class MeteredStore:
    def __init__(self, store: KVStore, metrics: Metrics) -> None:
        self.inner = store
        self.metrics = metrics

    def _call(self, op: str, fn: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            result = fn()
        except (NotFound, CASConflict):
            self.metrics.registry_op(op, time.monotonic() - started)
            raise
        except Exception:
            self.metrics.registry_op(op, 0.0, ok=False)
            raise
        self.metrics.registry_op(op, time.monotonic() - started)
        return result

    def get(self, key: str) -> Node | None:
        return self._call("get", lambda: self.inner.get(key))

    def list(self, prefix: str) -> Listing:
        return self._call("get_all", lambda: self.inner.list(prefix))

    def set(self, key: str, value: str, *, ttl: int | None = None, prev_exist: bool | None = None,
            prev_value: str | None = None, prev_index: int | None = None) -> Node:
        return self._call("set", lambda: self.inner.set(key, value, ttl=ttl, prev_exist=prev_exist,
                                                        prev_value=prev_value, prev_index=prev_index))

    def set_many(self, groups: Sequence[Sequence[tuple[str, str]]]) -> None:
        self._call("set", lambda: self.inner.set_many(groups))

    def create_many(self, items: Sequence[tuple[str, str]]) -> Sequence[bool]:
        return self._call("set", lambda: self.inner.create_many(items))

    def refresh(self, key: str, ttl: int) -> Node:
        return self._call("refresh", lambda: self.inner.refresh(key, ttl))

    def delete(self, key: str, *, recursive: bool = False, prev_value: str | None = None,
               prev_index: int | None = None) -> None:
        self._call("delete", lambda: self.inner.delete(key, recursive=recursive, prev_value=prev_value,
                                                       prev_index=prev_index))

    def watch(self, prefix: str, *, after_index: int, timeout: float) -> Event | None:
        return self.inner.watch(prefix, after_index=after_index, timeout=timeout)

    def stream(self, prefix: str, *, timeout: float) -> LiveStream:
        return self.inner.stream(prefix, timeout=timeout)

    def current_index(self) -> int:
        return self.inner.current_index()

    def close(self) -> None:
        self.inner.close()
