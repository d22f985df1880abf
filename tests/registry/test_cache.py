"""TreeCache against a store that ends its streams early: nothing between two streams is lost."""

from __future__ import annotations

from collections.abc import Iterator

from fleetpy.registry.cache import TreeCache
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.store import Event, LiveStream


class _Cut:
    """A live stream the store closes after its first event (``quiet`` stays False)."""

    def __init__(self, inner: LiveStream) -> None:
        self.inner = inner
        self.opened = inner.opened
        self.quiet = False

    def __iter__(self) -> Iterator[Event]:
        for event in self.inner:
            yield event
            return

    def close(self) -> None:
        self.inner.close()


class CuttingStore(MemoryStore):
    """Closes its first ``cuts`` streams after one event each; the writes of ``meanwhile`` land right after."""

    def __init__(self, cuts: int) -> None:
        super().__init__()
        self.cuts = cuts
        self.opened = 0
        self.meanwhile: list[tuple[str, str]] = []

    def stream(self, prefix: str, *, timeout: float) -> LiveStream:  # type: ignore[override]
        self.opened += 1
        inner = super().stream(prefix, timeout=timeout)
        if self.cuts:
            self.cuts -= 1
            for key, value in self.meanwhile:  # written after the stream opened: on it
                self.set(key, value)
            self.meanwhile = [(f"{key}-late", value) for key, value in self.meanwhile]  # missed by the cut
            return _Cut(inner)
        return inner


def test_a_stream_closed_by_the_store_is_followed_by_a_new_one_and_nothing_is_lost() -> None:
    store = CuttingStore(cuts=2)
    cache = TreeCache(store, "/t", watch_timeout=0.2)
    cache.follow()  # loads
    store.meanwhile = [("/t/a", "1"), ("/t/b", "2")]
    cache.follow(quiet=0.1)
    # each cut stream delivered one event; the writes it dropped came from the next stream's fill
    assert store.opened == 3 and cache.reloads == 1
    assert sorted(n.key for n in cache.nodes()) == ["/t/a", "/t/a-late", "/t/b", "/t/b-late"]


class LateStore(MemoryStore):
    """Its first ``late`` watches time out without an answer, as a watch of a busy etcd can."""

    def __init__(self, late: int) -> None:
        super().__init__()
        self.late = late

    def watch(self, prefix: str, *, after_index: int, timeout: float) -> Event | None:
        if self.late:
            self.late -= 1
            return None
        return super().watch(prefix, after_index=after_index, timeout=timeout)


def test_a_gap_is_never_assumed_empty_because_a_watch_timed_out() -> None:
    store = LateStore(late=0)
    cache = TreeCache(store, "/t", watch_timeout=0.2)
    cache.follow()  # loads
    before = cache.index
    store.set("/t/a", "1")
    store.set("/t/b", "2")
    store.late = 1
    cache.follow(quiet=0.1)  # the stream opens after both; the watch for the gap times out
    assert cache.index == before and cache.nodes() == []
    while cache.index < store.current_index():
        cache.step()  # long polls take the gap from the history
    assert [n.key for n in cache.nodes()] == ["/t/a", "/t/b"]
