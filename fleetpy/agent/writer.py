"""``KeyedWriter``: registry writes run on a few worker threads, the latest write per key wins.

I/O executor for the publisher (state saves, TTL refreshes, heartbeats). One write per key is in flight at a time,
a newer write for a key replaces a pending one, a write can be held back for a while (``delay``: changes of the
key within that time then cost one write), and a write that fails because etcd is unreachable is retried
with backoff (logged once per outage) unless a newer one replaced it. Keeps a slow etcd off the reconcile path.
Plain writes (``Put``) that are ready together go in one pipelined ``set_many``: a start of 100 units on a
machine makes ~300 of them within a second or two, and one at a time each cost ~300 us of CPU.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetpy.errors import FleetError, RegistryUnavailable
from fleetpy.registry.store import KVStore

log = logging.getLogger("fleetpy.agent.writer")

BATCH = 16  # Puts one worker sends together at most: one pipeline window, on one connection, from the worker itself
NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class Put:
    """A plain write of ``value`` at ``key`` (no TTL, no compare) to the writer's store; ``then`` runs once it
    is done. Puts ready at the same time go together."""

    key: str
    value: str
    then: Callable[[], None] | None = None


Op = Callable[[], None] | Put


class KeyedWriter:
    """Ready keys wait in two FIFO queues (urgent, then the others), held-back ones in a heap by due time, so a
    worker finds its next write without looking at the held ones: a start of many units holds back one legacy
    write per unit for a second while the others go. A worker is woken per write to do; ``flush`` waiters
    separately, and one worker at a time waits for the next due time. Idle workers wake for nothing else (they
    used to look every second: 8 wake-ups a second per idle fleetpyd, 500 per simulation worker process)."""

    def __init__(self, *, workers: int = 8, name: str = "writer", max_backoff: float = 2.0,
                 store: KVStore | None = None, max_hold: float = 30.0) -> None:
        """``store``: where ``Put`` ops go (required to submit them); ``max_hold``: how long after it was due a
        ``background`` write may wait for a quiet writer."""
        self.name = name
        self.store = store
        self.max_backoff = max_backoff
        self.max_hold = max_hold
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # workers: a write to do (or close)
        self._idle = threading.Condition(lock)  # flush(): nothing pending or in flight
        self._pending: dict[str, Op] = {}  # the write to do per key (ready, held or waiting for its key)
        self._urgent: dict[str, None] = {}  # ready keys that go before the others (ordered)
        self._normal: dict[str, None] = {}
        self._held: dict[str, tuple[float, bool, float]] = {}  # held-back keys: (due, urgent once due, the latest
        # a background write may be put off to, or 0.0: not a background write)
        self._busy_at = float("-inf")  # when the last write that is not a background one was submitted
        self._quiet = 0.0  # how long after that a background write waits (its delay)
        self._heap: list[tuple[float, str]] = []  # (due, key); an entry whose due is not _held's is stale
        self._inflight: set[str] = set()
        self._timing_until = NEVER  # when the worker that waits for a due time (or the end of a backoff) wakes
        self._closed = False
        self._down_until = 0.0
        self._backoff = 0.0
        self._outage = ""
        self.writes = 0
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, key: str, op: Op, *, urgent: bool = False, delay: float = 0.0, background: bool = False) -> None:
        """Queue ``op`` as the write of ``key`` (replacing a pending one); ``urgent`` writes go first; ``delay``:
        not before that many seconds (a pending held-back write of the key keeps its time: the key is written
        at most ``delay`` s after its first change). A ``background`` write (with a ``delay``) also waits until
        no other write was submitted for ``delay`` s, or ``max_hold`` s past its time: a write no reader waits
        for goes after a burst of those they wait for, instead of sharing etcd with them."""
        with self._cond:
            held = self._held.pop(key, None) if key in self._pending else None
            self._urgent.pop(key, None)
            self._normal.pop(key, None)
            self._pending[key] = op
            now = time.monotonic()
            if not background:
                self._busy_at = now
            if delay > 0:
                due = held[0] if held is not None else now + delay
                latest = (held[2] if held is not None else due + self.max_hold) if background else 0.0
                if background:
                    self._quiet = delay
                self._held[key] = (due, urgent, latest)
                heapq.heappush(self._heap, (due, key))
                if self._timing_until == NEVER:
                    self._cond.notify()  # a worker to wait for its time
                elif due < self._timing_until:
                    self._cond.notify_all()  # the timing worker waits for a later time (notify may wake another)
            else:
                (self._urgent if urgent else self._normal)[key] = None
                self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._inflight

    def flush(self, timeout: float) -> bool:
        """Wait until every submitted write is done (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
            return True

    def close(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout / len(self._threads))

    # -- workers ------------------------------------------------------------------------------------------
    def _next(self) -> list[tuple[str, Op]] | None:
        """The next write, or (a ``Put``) up to ``BATCH`` ready Puts; None once closed."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                wait = self._down_until - now
                if wait <= 0:
                    wait = self._release(now)
                    taken = self._take()
                    if taken:
                        if (self._heap and self._timing_until == NEVER) or self._urgent or self._normal:
                            self._cond.notify()  # another worker: for the next due time, or more due keys
                        return taken
                if wait < NEVER and self._timing_until == NEVER:
                    self._timing_until = now + wait
                    try:
                        self._cond.wait(wait)
                    finally:
                        self._timing_until = NEVER
                else:
                    self._cond.wait()  # submit, _done, _failed and close notify
            return None

    def _take(self) -> list[tuple[str, Op]]:
        """Take the first ready key not in flight (urgent ones first); when its op is a ``Put``, the ready Puts
        after it too, up to ``BATCH``."""
        taken: list[tuple[str, Op]] = []
        for queue in (self._urgent, self._normal):
            chosen = []
            for key in queue:
                if key in self._inflight:  # one in flight per key
                    continue
                op = self._pending[key]
                if taken and not isinstance(op, Put):
                    continue
                chosen.append(key)
                taken.append((key, op))
                if not isinstance(op, Put) or len(taken) >= BATCH:
                    break
            for key in chosen:
                del queue[key]
                del self._pending[key]
                self._inflight.add(key)
            if taken and (not isinstance(taken[0][1], Put) or len(taken) >= BATCH):
                break
        return taken

    def _release(self, now: float) -> float:
        """Move the held-back keys that are due to their queue; seconds until the next one is due (NEVER: none
        is held)."""
        heap = self._heap
        while heap:
            due, key = heap[0]
            held = self._held.get(key)
            if held is not None and held[0] == due and due > now:
                return due - now
            heapq.heappop(heap)
            if held is None or held[0] != due:
                continue
            later = min(self._busy_at + self._quiet, held[2])
            if later > now:  # a background write while other writes keep coming: again when they stop
                self._held[key] = (later, held[1], held[2])
                heapq.heappush(heap, (later, key))
                continue
            del self._held[key]
            (self._urgent if held[1] else self._normal)[key] = None
        return NEVER

    def _work(self) -> None:
        while (taken := self._next()) is not None:
            keys = [key for key, _ in taken]
            try:
                self._run([op for _, op in taken])
            except RegistryUnavailable as err:
                for key, op in taken:
                    self._failed(key, op, err)
            except FleetError as err:
                log.warning("%s: write %s failed: %s", self.name, ", ".join(keys), err)
                self._done(keys)
            except Exception:
                log.exception("%s: write %s crashed", self.name, ", ".join(keys))
                self._done(keys)
            else:
                self._done(keys, ok=True)

    def _run(self, ops: list[Op]) -> None:
        puts = [op for op in ops if isinstance(op, Put)]
        if not puts:
            for op in ops:
                op()  # type: ignore[operator]
            return
        if self.store is None:
            raise TypeError(f"{self.name}: a Put needs the writer's store")
        self.store.set_many([[(put.key, put.value)] for put in puts])
        for put in puts:
            if put.then is not None:
                put.then()

    def _done(self, keys: list[str], *, ok: bool = False) -> None:
        with self._cond:
            for key in keys:
                self._inflight.discard(key)
                self.writes += 1
                if key in self._urgent or key in self._normal:
                    self._cond.notify()  # a newer write of the key waited for this one
            if ok and self._outage:
                log.info("%s: etcd reachable again", self.name)
                self._outage = ""
                self._backoff = 0.0
            if not self._pending and not self._inflight:
                self._idle.notify_all()

    def _failed(self, key: str, op: Op, err: Exception) -> None:
        with self._cond:
            self._inflight.discard(key)
            if key not in self._pending:  # retry (not urgently), unless a newer write for the key came
                self._pending[key] = op
                self._normal[key] = None
            if not self._outage:
                log.warning("%s: etcd unreachable, writes will be retried: %s", self.name, err)
                self._outage = str(err)
            self._backoff = min(self.max_backoff, max(0.5, self._backoff * 2))
            self._down_until = time.monotonic() + self._backoff
            self._cond.notify()
