"""``KeyedWriter``: registry writes run on a few worker threads, the latest write per key wins.

I/O executor for the publisher (state saves, TTL refreshes, heartbeats). One write per key is in flight at a time,
a newer write for a key replaces a pending one, a write can be held back for a while (``delay``: changes of the
key within that time then cost one write), and a write that fails because etcd is unreachable is retried
with backoff (logged once per outage) unless a newer one replaced it. Keeps a slow etcd off the reconcile path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from fleetpy.errors import FleetError, RegistryUnavailable

log = logging.getLogger("fleetpy.agent.writer")

Op = Callable[[], None]


class KeyedWriter:
    def __init__(self, *, workers: int = 8, name: str = "writer", max_backoff: float = 2.0) -> None:
        self.name = name
        self.max_backoff = max_backoff
        self._cond = threading.Condition()
        self._pending: dict[str, Op] = {}
        self._urgent: dict[str, None] = {}  # pending keys that go before the others (ordered)
        self._due: dict[str, float] = {}  # pending keys held back until then (monotonic time)
        self._inflight: set[str] = set()
        self._closed = False
        self._down_until = 0.0
        self._backoff = 0.0
        self._outage = ""
        self.writes = 0
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, key: str, op: Op, *, urgent: bool = False, delay: float = 0.0) -> None:
        """Queue ``op`` as the write of ``key`` (replacing a pending one); ``urgent`` writes go first; ``delay``:
        not before that many seconds (a pending held-back write of the key keeps its time: the key is written
        at most ``delay`` s after its first change)."""
        with self._cond:
            held = self._due.get(key) if key in self._pending else None
            self._pending.pop(key, None)
            self._pending[key] = op  # re-inserted at the end: FIFO among keys
            self._urgent.pop(key, None)
            self._due.pop(key, None)
            if urgent:
                self._urgent[key] = None
            if delay > 0:
                self._due[key] = held if held is not None else time.monotonic() + delay
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._inflight

    def flush(self, timeout: float) -> bool:
        """Wait until every submitted write is done (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout / len(self._threads))

    # -- workers ------------------------------------------------------------------------------------------
    def _next(self) -> tuple[str, Op] | None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                wait = self._down_until - now
                if wait <= 0:
                    wait = 1.0
                    for keys in (self._urgent, self._pending):
                        for key in keys:
                            due = self._due.get(key)
                            if due is not None and due > now:
                                wait = min(wait, due - now)
                            elif key not in self._inflight:
                                self._inflight.add(key)
                                self._urgent.pop(key, None)
                                self._due.pop(key, None)
                                return key, self._pending.pop(key)
                self._cond.wait(min(wait, 1.0))
            return None

    def _work(self) -> None:
        while (item := self._next()) is not None:
            key, op = item
            try:
                op()
            except RegistryUnavailable as err:
                self._failed(key, op, err)
            except FleetError as err:
                log.warning("%s: write %s failed: %s", self.name, key, err)
                self._done(key)
            except Exception:
                log.exception("%s: write %s crashed", self.name, key)
                self._done(key)
            else:
                self._done(key, ok=True)

    def _done(self, key: str, *, ok: bool = False) -> None:
        with self._cond:
            self._inflight.discard(key)
            self.writes += 1
            if ok and self._outage:
                log.info("%s: etcd reachable again", self.name)
                self._outage = ""
                self._backoff = 0.0
            self._cond.notify_all()

    def _failed(self, key: str, op: Op, err: Exception) -> None:
        with self._cond:
            self._inflight.discard(key)
            self._pending.setdefault(key, op)  # retry (not urgently), unless a newer write for the key came
            if not self._outage:
                log.warning("%s: etcd unreachable, writes will be retried: %s", self.name, err)
                self._outage = str(err)
            self._backoff = min(self.max_backoff, max(0.5, self._backoff * 2))
            self._down_until = time.monotonic() + self._backoff
            self._cond.notify_all()
