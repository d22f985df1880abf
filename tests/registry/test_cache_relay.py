"""``TreeCache`` fed by a relay: ``pause`` drops the watch's events, ``replace`` sets whole directories as of an
index newer than the last re-read, ``resume`` re-reads; ``sparse`` copies are not re-read for being far behind."""

from __future__ import annotations

from fleetpy.registry.cache import TreeCache
from fleetpy.registry.store import Action, Event, Node
from fleetpy.testing import MemoryStore

P = "/t/job"


def copy() -> tuple[MemoryStore, TreeCache, list[object]]:
    store = MemoryStore()
    store.set(f"{P}/a/object", "A")
    store.set(f"{P}/a/target", "m1")
    store.set(f"{P}/b/object", "B")
    seen: list[object] = []
    cache = TreeCache(store, P, on_change=seen.append)
    cache.reload()
    return store, cache, seen


def test_replace_sets_each_directory_and_logs_the_keys_that_changed() -> None:
    _, cache, seen = copy()
    version = cache.version
    dirs = {f"{P}/a": [Node(f"{P}/a/object", "A", cache.get(f"{P}/a/object").modified_index),  # type: ignore[union-attr]
                       Node(f"{P}/a/target-state", "launched", 9)],
            f"{P}/b": [], f"{P}/c": [Node(f"{P}/c/object", "C", 10)]}
    assert cache.replace(dirs, index=cache.read_at + 1)
    assert [n.key for n in cache.nodes()] == [f"{P}/a/object", f"{P}/a/target-state", f"{P}/c/object"]
    _, changed = cache.changes_since(version)
    assert changed is not None and set(changed) == {f"{P}/a/target", f"{P}/a/target-state", f"{P}/b/object",
                                                    f"{P}/c/object"}
    assert seen[-1] is None


def test_replace_as_old_as_the_last_reread_is_refused() -> None:
    _, cache, _ = copy()
    assert not cache.replace({f"{P}/a": []}, index=cache.read_at)
    assert cache.get(f"{P}/a/object") is not None


def test_a_paused_copy_drops_watch_events_and_resume_rereads() -> None:
    store, cache, _ = copy()
    cache.pause()
    node = store.set(f"{P}/d/object", "D")
    cache.apply(Event(Action.SET, node))  # a long poll answered after the pause
    assert cache.get(f"{P}/d/object") is None and cache.paused
    cache.resume()
    assert cache.get(f"{P}/d/object") is not None and not cache.paused


def test_a_sparse_copy_far_behind_is_not_reread() -> None:
    store = MemoryStore()
    node = store.set("/t/inbox/m1", "{}")
    cache = TreeCache(store, "/t/inbox/m1", sparse=True)
    cache.reload()
    reloads = cache.reloads
    far = Event(Action.SET, node, store_index=node.modified_index + 10_000)
    assert not cache._reload_if_far_behind(far)
    assert cache.reloads == reloads


def test_a_sparse_copy_catches_up_by_reading_and_rereads_what_it_missed() -> None:
    store = MemoryStore()
    store.set("/t/inbox/m1", "{}")
    seen: list[object] = []
    cache = TreeCache(store, "/t/inbox/m1", sparse=True, on_change=seen.append)
    cache.reload()
    store.set("/t/other", "x")  # elsewhere: the copy's position moves up, nothing is re-read
    cache._catch_up()
    assert cache.index == store.current_index() and seen == [None]
    store.set("/t/inbox/m1", "missed")  # as if the watch had not shown it
    store.set("/t/other", "y")
    cache._catch_up()
    node = cache.get("/t/inbox/m1")
    assert node is not None and node.value == "missed" and seen == [None, None]
