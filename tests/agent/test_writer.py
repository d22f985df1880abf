"""KeyedWriter: latest write per key wins, one in flight per key, urgent first, retries while etcd is down."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from fleetpy.agent import writer as writer_module
from fleetpy.agent.writer import KeyedWriter, Put
from fleetpy.errors import RegistryUnavailable
from fleetpy.registry.memory import MemoryStore


@pytest.fixture
def writer() -> Iterator[KeyedWriter]:
    w = KeyedWriter(workers=1, name="test")
    yield w
    w.close()


def test_latest_write_per_key_wins(writer: KeyedWriter) -> None:
    gate = threading.Event()
    done: list[str] = []
    writer.submit("block", lambda: gate.wait(5) and None)
    for i in range(5):
        writer.submit("k", lambda i=i: done.append(f"k{i}"))  # type: ignore[misc]
    gate.set()
    assert writer.flush(5)
    assert done == ["k4"]


def test_urgent_writes_go_first(writer: KeyedWriter) -> None:
    gate = threading.Event()
    done: list[str] = []
    writer.submit("block", lambda: gate.wait(5) and None)
    writer.submit("slow1", lambda: done.append("slow1"))
    writer.submit("slow2", lambda: done.append("slow2"))
    writer.submit("fast", lambda: done.append("fast"), urgent=True)
    gate.set()
    assert writer.flush(5)
    assert done == ["fast", "slow1", "slow2"]


def test_a_delayed_write_waits_and_changes_meanwhile_cost_one_write(writer: KeyedWriter) -> None:
    done: list[tuple[str, float]] = []
    start = time.monotonic()
    writer.submit("legacy", lambda: done.append(("v1", time.monotonic() - start)), delay=0.3)
    writer.submit("now", lambda: done.append(("now", time.monotonic() - start)))
    time.sleep(0.1)
    writer.submit("legacy", lambda: done.append(("v2", time.monotonic() - start)), delay=0.3)  # keeps its time
    assert writer.flush(5)
    assert [what for what, _ in done] == ["now", "v2"]
    assert done[0][1] < 0.1 and 0.3 <= done[1][1] < 0.39


def test_a_background_write_waits_until_the_other_writes_stop(writer: KeyedWriter) -> None:
    done: list[tuple[str, float]] = []
    start = time.monotonic()
    writer.submit("legacy", lambda: done.append(("legacy", time.monotonic() - start)), delay=0.2, background=True)
    for i in range(6):  # a burst of other writes, one every 0.1 s for 0.5 s: the background one waits it out
        writer.submit(f"st{i}", lambda i=i: done.append((f"st{i}", time.monotonic() - start)))  # type: ignore[misc]
        time.sleep(0.1)
    assert writer.flush(5)
    assert done[-1][0] == "legacy"
    assert 0.5 + 0.2 <= done[-1][1] < 0.5 + 0.2 + 0.15  # 0.2 s after the last other write


def test_a_background_write_waits_at_most_max_hold_past_its_time() -> None:
    writer = KeyedWriter(workers=1, name="test", max_hold=0.3)
    try:
        done: list[float] = []
        start = time.monotonic()
        writer.submit("legacy", lambda: done.append(time.monotonic() - start), delay=0.1, background=True)
        for i in range(24):  # other writes every 0.05 s for 1.2 s
            writer.submit(f"st{i}", lambda: None)
            time.sleep(0.05)
        assert writer.flush(5)
        assert len(done) == 1 and 0.4 <= done[0] < 0.55  # due at 0.1 s, held 0.3 s more at most
    finally:
        writer.close()


def test_unreachable_etcd_is_retried_until_it_returns(writer: KeyedWriter, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fleetpy.agent.writer")
    attempts: list[int] = []

    def op() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise RegistryUnavailable("connection refused")
    writer.submit("k", op)
    assert writer.flush(10)
    assert len(attempts) == 3
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_a_newer_write_replaces_a_failed_one(writer: KeyedWriter) -> None:
    done: list[str] = []

    def failing() -> None:
        writer.submit("k", lambda: done.append("new"))
        raise RegistryUnavailable("down")
    writer.submit("k", failing)
    assert writer.flush(10)
    assert done == ["new"]


def test_other_errors_are_logged_and_dropped(writer: KeyedWriter, caplog: pytest.LogCaptureFixture) -> None:
    from fleetpy.errors import CASConflict

    def op() -> None:
        raise CASConflict("compare failed")
    writer.submit("k", op)
    assert writer.flush(5)
    assert any("compare failed" in r.getMessage() for r in caplog.records)


def test_held_back_writes_go_at_their_time_and_do_not_hold_up_the_others() -> None:
    writer = KeyedWriter(workers=4, name="test")
    try:
        start = time.monotonic()
        done: dict[str, float] = {}
        for i in range(200):  # a start of many units holds back one legacy write each
            writer.submit(f"legacy{i}", lambda i=i: done.setdefault(f"legacy{i}", time.monotonic() - start),  # type: ignore[misc]
                          delay=0.3 + i * 0.001)
        for i in range(50):
            writer.submit(f"now{i}", lambda i=i: done.setdefault(f"now{i}", time.monotonic() - start))  # type: ignore[misc]
        for i, delay in enumerate((0.5, 0.7)):  # due while every worker is idle: one of them watches the time
            writer.submit(f"late{i}", lambda i=i: done.setdefault(f"late{i}", time.monotonic() - start),  # type: ignore[misc]
                          delay=delay)
        assert writer.flush(5)
        assert max(done[f"now{i}"] for i in range(50)) < 0.2
        assert all(0.3 + i * 0.001 <= done[f"legacy{i}"] < 0.6 for i in range(200))
        assert 0.5 <= done["late0"] < 0.6 and 0.7 <= done["late1"] < 0.8
        assert writer.writes == 252
    finally:
        writer.close()


def test_keys_due_at_the_same_time_all_go_at_once() -> None:
    writer = KeyedWriter(workers=3, name="test")
    try:
        gate = threading.Event()
        start = time.monotonic()
        done: dict[str, float] = {}
        def op(key: str) -> None:
            done.setdefault(key, time.monotonic() - start)
            gate.wait(0.3)  # each write takes a while: the three must run side by side

        for i in range(3):  # held until the same moment: one worker wakes for them, and wakes the others
            writer.submit(f"k{i}", lambda key=f"k{i}": op(key), delay=0.2)  # type: ignore[misc]
        assert writer.flush(5)
        assert all(0.2 <= t < 0.35 for t in done.values()), done  # in parallel, not one per 1 s worker tick
    finally:
        writer.close()


def test_a_write_due_sooner_than_the_one_a_worker_waits_for_goes_at_its_own_time() -> None:
    writer = KeyedWriter(workers=2, name="test")
    try:
        start = time.monotonic()
        done: dict[str, float] = {}
        writer.submit("later", lambda: done.setdefault("later", time.monotonic() - start), delay=1.5)
        time.sleep(0.05)  # a worker now waits until 1.5 s
        writer.submit("sooner", lambda: done.setdefault("sooner", time.monotonic() - start), delay=0.2)
        assert writer.flush(5)
        assert 0.2 <= done["sooner"] < 0.35 and 1.5 <= done["later"] < 1.65
    finally:
        writer.close()


class _Store(MemoryStore):
    """Records each set_many's keys; fails them while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.down = False

    def set_many(self, groups: Sequence[Sequence[tuple[str, str]]]) -> None:
        if self.down:
            raise RegistryUnavailable("etcd cluster is unavailable or misconfigured: connection refused")
        self.batches.append([key for group in groups for key, _ in group])
        super().set_many(groups)


def test_puts_ready_together_go_in_one_batch_and_other_writes_alone() -> None:
    store = _Store()
    writer = KeyedWriter(workers=1, name="test", store=store)
    try:
        gate = threading.Event()
        done: list[str] = []
        writer.submit("block", lambda: gate.wait(5) and None)
        for i in range(3):
            writer.submit(f"p{i}", Put(f"/k/p{i}", str(i), then=lambda i=i: done.append(f"p{i}")))  # type: ignore[misc]
        writer.submit("other", lambda: done.append("other"))
        writer.submit("p3", Put("/k/p3", "3"))
        gate.set()
        assert writer.flush(5)
        assert store.batches == [["/k/p0", "/k/p1", "/k/p2", "/k/p3"]]  # the callable waited for its turn
        assert done == ["p0", "p1", "p2", "other"]
        assert {n.key: n.value for n in store.list("/k").nodes} == {f"/k/p{i}": str(i) for i in range(4)}
    finally:
        writer.close()


def _switches(thread: threading.Thread) -> int:
    with open(f"/proc/self/task/{thread.native_id}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))


def test_idle_workers_sleep_until_there_is_work() -> None:
    """No wake-up while nothing is to be written (they used to look every second); a write still wakes one."""
    writer = KeyedWriter(workers=3, name="test")
    try:
        writer.submit("k", lambda: None)
        assert writer.flush(5)
        time.sleep(0.1)
        before = [_switches(t) for t in writer._threads]
        time.sleep(1.3)
        assert [_switches(t) for t in writer._threads] == before
        done = threading.Event()
        writer.submit("k", done.set)
        assert done.wait(1)
    finally:
        writer.close()


def test_a_batch_is_at_most_BATCH_puts_and_a_failed_one_is_retried_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "BATCH", 2)
    store = _Store()
    store.down = True
    writer = KeyedWriter(workers=1, name="test", store=store, max_backoff=0.05)
    try:
        for i in range(3):
            writer.submit(f"p{i}", Put(f"/k/p{i}", str(i)))
        time.sleep(0.2)
        store.down = False
        assert writer.flush(5)
        assert sorted(map(len, store.batches)) == [1, 2]
        assert sorted(key for batch in store.batches for key in batch) == ["/k/p0", "/k/p1", "/k/p2"]
    finally:
        writer.close()
