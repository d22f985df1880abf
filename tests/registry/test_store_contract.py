"""The KVStore contract, run against the in-memory twin and a real etcd: the fake cannot drift."""

from __future__ import annotations

import threading
import time

import pytest

from fleetpy.errors import CASConflict, NotFound
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.store import Action, IndexCleared, KVStore


def test_set_get_roundtrip(store: KVStore, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}a/b"
    node = store.set(key, "v1")
    assert node.value == "v1"
    got = store.get(key)
    assert got is not None and got.value == "v1" and got.modified_index == node.modified_index
    assert store.get(f"{etcd_prefix}missing") is None


def test_list_is_recursive_sorted_and_leaves_only(store: KVStore, etcd_prefix: str) -> None:
    for key in ("z/1", "a/2", "a/1", "m"):
        store.set(f"{etcd_prefix}t/{key}", key)
    listing = store.list(f"{etcd_prefix}t")
    assert [n.key for n in listing.nodes] == [f"{etcd_prefix}t/{k}" for k in ("a/1", "a/2", "m", "z/1")]
    assert listing.index >= max(n.modified_index for n in listing.nodes)
    assert store.list(f"{etcd_prefix}nothing").nodes == ()


@pytest.mark.parametrize(
    ("kwargs", "exists", "error"),
    [
        pytest.param({"prev_exist": False}, True, CASConflict, id="create-but-exists"),
        pytest.param({"prev_exist": False}, False, None, id="create-new"),
        pytest.param({"prev_exist": True}, False, NotFound, id="update-but-missing"),
        pytest.param({"prev_exist": True}, True, None, id="update-existing"),
        pytest.param({"prev_value": "old"}, True, None, id="cas-value-match"),
        pytest.param({"prev_value": "other"}, True, CASConflict, id="cas-value-mismatch"),
        pytest.param({"prev_value": "old"}, False, NotFound, id="cas-value-missing"),
    ],
)
def test_set_conditions(store: KVStore, etcd_prefix: str, kwargs: dict[str, object], exists: bool,
                        error: type[Exception] | None) -> None:
    key = f"{etcd_prefix}cas"
    if exists:
        store.set(key, "old")
    if error is None:
        assert store.set(key, "new", **kwargs).value == "new"  # type: ignore[arg-type]
    else:
        with pytest.raises(error):
            store.set(key, "new", **kwargs)  # type: ignore[arg-type]
        current = store.get(key)
        assert (current.value if current else None) == ("old" if exists else None)


def test_set_many_writes_each_group_in_order(store: KVStore, etcd_prefix: str) -> None:
    big = "x" * 3000  # many windows' worth of bytes: the pipelined sends are split
    groups = [[(f"{etcd_prefix}many/u{i}/object", f"{i}{big}"), (f"{etcd_prefix}many/u{i}/state", f"s{i}")]
              for i in range(150)]
    start = store.current_index()
    store.set_many(groups)
    store.set_many([])
    nodes = {n.key: n for n in store.list(f"{etcd_prefix}many").nodes}
    assert len(nodes) == 300
    for i in (0, 77, 149):
        obj, state = nodes[f"{etcd_prefix}many/u{i}/object"], nodes[f"{etcd_prefix}many/u{i}/state"]
        assert (obj.value, state.value) == (f"{i}{big}", f"s{i}")
        assert start < obj.modified_index < state.modified_index  # a group's writes in their order


def test_set_many_raises_a_writes_failure(store: KVStore, etcd_prefix: str) -> None:
    store.set(f"{etcd_prefix}fail/dir/leaf", "x")
    with pytest.raises(CASConflict):  # a directory cannot get a value
        store.set_many([[(f"{etcd_prefix}fail/a", "1")], [(f"{etcd_prefix}fail/dir", "2")]])
    assert store.get(f"{etcd_prefix}fail/a") is not None  # written before the failure


def test_create_many_creates_and_reports_the_keys_that_existed(store: KVStore, etcd_prefix: str) -> None:
    store.set(f"{etcd_prefix}create/u7", "taken")
    items = [(f"{etcd_prefix}create/u{i}", f"m{i}") for i in range(100)]  # several windows and connections
    assert store.create_many([]) == []
    created = store.create_many(items)
    assert created == [i != 7 for i in range(100)]
    nodes = {n.key: n.value for n in store.list(f"{etcd_prefix}create").nodes}
    assert nodes[f"{etcd_prefix}create/u7"] == "taken"
    assert all(nodes[f"{etcd_prefix}create/u{i}"] == f"m{i}" for i in range(100) if i != 7)
    assert store.create_many(items[:3]) == [False, False, False]


def test_cas_on_index(store: KVStore, etcd_prefix: str) -> None:
    key = f"{etcd_prefix}idx"
    first = store.set(key, "a")
    second = store.set(key, "b", prev_index=first.modified_index)
    with pytest.raises(CASConflict):
        store.set(key, "c", prev_index=first.modified_index)
    store.delete(key, prev_index=second.modified_index)
    assert store.get(key) is None


def test_delete_variants(store: KVStore, etcd_prefix: str) -> None:
    store.set(f"{etcd_prefix}d/x/1", "1")
    store.set(f"{etcd_prefix}d/x/2", "2")
    store.set(f"{etcd_prefix}d/y", "y")
    with pytest.raises(NotFound):
        store.delete(f"{etcd_prefix}d/nope")
    with pytest.raises(CASConflict):
        store.delete(f"{etcd_prefix}d/y", prev_value="not-y")
    store.delete(f"{etcd_prefix}d/y", prev_value="y")
    store.delete(f"{etcd_prefix}d/x", recursive=True)
    assert store.list(f"{etcd_prefix}d").nodes == ()


def test_ttl_expires_and_refresh_extends(store: KVStore, etcd_prefix: str) -> None:
    if isinstance(store, MemoryStore):
        now = [0.0]
        store = MemoryStore(clock=lambda: now[0])
        key = f"{etcd_prefix}ttl"
        store.set(key, "v", ttl=2)
        now[0] = 1.5
        store.refresh(key, 2)
        now[0] = 3.0
        assert store.get(key) is not None
        now[0] = 4.0
        assert store.get(key) is None
        return
    key = f"{etcd_prefix}ttl"
    store.set(key, "v", ttl=1)
    node = store.get(key)
    assert node is not None and node.ttl is not None and node.ttl <= 1
    store.refresh(key, 3)
    time.sleep(1.6)
    assert store.get(key) is not None
    deadline = time.monotonic() + 5
    while store.get(key) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.get(key) is None


def test_refresh_missing_is_not_found(store: KVStore, etcd_prefix: str) -> None:
    with pytest.raises(NotFound):
        store.refresh(f"{etcd_prefix}nope", 5)


def test_watch_sees_next_change_under_prefix(store: KVStore, etcd_prefix: str) -> None:
    store.set(f"{etcd_prefix}w/seed", "0")
    index = store.current_index()
    store.set(f"{etcd_prefix}other", "not under the prefix")
    store.set(f"{etcd_prefix}w/a/b", "1")
    event = store.watch(f"{etcd_prefix}w", after_index=index, timeout=2)
    assert event is not None and event.node.key == f"{etcd_prefix}w/a/b" and event.node.value == "1"
    assert event.action is Action.SET
    assert store.watch(f"{etcd_prefix}w", after_index=event.node.modified_index, timeout=0.3) is None


def test_watch_wakes_on_a_later_write_and_reports_deletes(store: KVStore, etcd_prefix: str) -> None:
    store.set(f"{etcd_prefix}w/x", "1")
    index = store.current_index()
    timer = threading.Timer(0.2, lambda: store.delete(f"{etcd_prefix}w/x"))
    timer.start()
    try:
        event = store.watch(f"{etcd_prefix}w", after_index=index, timeout=3)
    finally:
        timer.join()
    assert event is not None and event.action.removes and event.node.key == f"{etcd_prefix}w/x"


def test_watch_index_cleared_after_history(store: KVStore, etcd_prefix: str) -> None:
    start = store.current_index()
    for i in range(1010):
        store.set(f"{etcd_prefix}h/k", str(i))
    with pytest.raises(IndexCleared):
        store.watch(f"{etcd_prefix}h", after_index=start, timeout=1)


def test_tree_cache_follows_changes_and_keeps_up_with_unrelated_writes(store: KVStore, etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache

    store.set(f"{etcd_prefix}c/a", "1")
    cache = TreeCache(store, f"{etcd_prefix}c", watch_timeout=0.2)
    cache.step()  # first step loads
    assert [n.value for n in cache.nodes()] == ["1"]
    store.set(f"{etcd_prefix}c/b", "2")
    cache.step()
    store.delete(f"{etcd_prefix}c/a")
    cache.step()
    assert [(n.key.rsplit("/", 1)[1], n.value) for n in cache.nodes()] == [("b", "2")]
    for i in range(1100):  # busy elsewhere: more than the event history
        store.set(f"{etcd_prefix}elsewhere/{i % 5}", str(i))
        if i % 300 == 0:
            cache.step()  # quiet watches move the position along
    cache.step()
    store.set(f"{etcd_prefix}c/c", "3")
    cache.step()
    assert cache.reloads == 1  # never had to re-read the tree
    assert [n.value for n in cache.nodes()] == ["2", "3"]


def test_tree_cache_far_behind_a_burst_re_reads_instead_of_one_request_per_event(store: KVStore,
                                                                                  etcd_prefix: str) -> None:
    from fleetpy.registry.cache import CATCH_UP_LAG, TreeCache

    cache = TreeCache(store, f"{etcd_prefix}d", watch_timeout=0.2)
    cache.step()  # loads the empty tree
    for i in range(CATCH_UP_LAG + 50):
        store.set(f"{etcd_prefix}d/u{i:04}", str(i))
    cache.step()  # the first event says the store is 149 events further: one re-read brings every key
    assert cache.reloads == 2
    assert len(cache.nodes()) == CATCH_UP_LAG + 50
    store.set(f"{etcd_prefix}d/last", "x")
    cache.step()  # close behind again: event by event
    assert cache.reloads == 2 and cache.get(f"{etcd_prefix}d/last") is not None


def test_stream_delivers_live_events_in_order_then_ends_when_quiet(store: KVStore, etcd_prefix: str) -> None:
    seed = store.set(f"{etcd_prefix}s/seed", "0")
    stream = store.stream(f"{etcd_prefix}s", timeout=1.0)
    assert stream.opened >= seed.modified_index

    def writes() -> None:
        time.sleep(0.3)
        for i in range(5):
            store.set(f"{etcd_prefix}s/k{i}", str(i))
        store.delete(f"{etcd_prefix}s/k0")
    timer = threading.Thread(target=writes)
    timer.start()
    started = time.monotonic()
    try:
        events = list(stream)
    finally:
        timer.join()
    assert [(e.action.removes, e.node.key.rsplit("/", 1)[1]) for e in events] == [
        (False, f"k{i}") for i in range(5)] + [(True, "k0")]
    assert [e.node.value for e in events[:5]] == [str(i) for i in range(5)]
    assert stream.quiet and 1.0 <= time.monotonic() - started < 5.0  # ended after a quiet second


def test_stream_starts_where_it_opens(store: KVStore, etcd_prefix: str) -> None:
    before = store.set(f"{etcd_prefix}p/a", "1")
    stream = store.stream(f"{etcd_prefix}p", timeout=1.0)
    after = store.set(f"{etcd_prefix}p/b", "2")
    try:
        first = next(iter(stream))
    finally:
        stream.close()
    assert before.modified_index <= stream.opened < after.modified_index
    assert (first.node.key, first.node.modified_index) == (f"{etcd_prefix}p/b", after.modified_index)


def test_tree_cache_fills_the_gap_before_its_stream_from_the_history_or_one_re_read(
        store: KVStore, etcd_prefix: str) -> None:
    from fleetpy.registry.cache import CATCH_UP_LAG, TreeCache

    cache = TreeCache(store, f"{etcd_prefix}g", watch_timeout=0.2)
    cache.follow()  # loads the empty tree
    store.set(f"{etcd_prefix}g/a", "1")
    store.set(f"{etcd_prefix}elsewhere/x", "x")
    store.set(f"{etcd_prefix}g/b", "2")
    store.delete(f"{etcd_prefix}g/a")
    cache.follow(quiet=0.2)  # its stream opens after these changes: they come from the history, one by one
    assert [(n.key.rsplit("/", 1)[1], n.value) for n in cache.nodes()] == [("b", "2")]
    assert cache.reloads == 1 and cache.index >= store.get(f"{etcd_prefix}g/b").modified_index  # type: ignore[union-attr]
    for i in range(CATCH_UP_LAG + 10):
        store.set(f"{etcd_prefix}g/u{i:04}", str(i))
    cache.follow(quiet=0.2)  # more than the catch-up lag: one re-read instead
    assert cache.reloads == 2 and len(cache.nodes()) == CATCH_UP_LAG + 11


def test_tree_cache_follows_a_burst_on_one_stream(store: KVStore, etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache

    cache = TreeCache(store, f"{etcd_prefix}f", watch_timeout=0.5)
    cache.follow()  # loads the empty tree
    stop = threading.Event()
    runner = threading.Thread(target=cache.run, args=(stop,))
    runner.start()
    try:
        time.sleep(0.3)
        for i in range(60):
            store.set(f"{etcd_prefix}f/u{i:02}", str(i))
        store.delete(f"{etcd_prefix}f/u00")
        wanted = [str(i) for i in range(1, 60)]
        deadline = time.monotonic() + 5
        while [n.value for n in cache.nodes()] != wanted and time.monotonic() < deadline:
            time.sleep(0.02)  # not "59 nodes": u00-u58 are 59 too, before u59 and the delete came
        assert [n.value for n in cache.nodes()] == wanted
        assert cache.reloads == 1
    finally:
        stop.set()
        runner.join(5)


def test_tree_cache_following_a_quiet_tree_survives_the_history_moving_past_it(store: KVStore,
                                                                                etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache

    store.set(f"{etcd_prefix}quiet/a", "1")
    cache = TreeCache(store, f"{etcd_prefix}quiet", watch_timeout=0.3)
    cache.follow()  # loads
    for i in range(1010):  # busy elsewhere while the stream waits
        store.set(f"{etcd_prefix}busy/{i % 5}", str(i))
    cache.follow()  # quiet stream ends; catching up finds the history gone: one re-read, no error
    assert cache.reloads == 2 and [n.value for n in cache.nodes()] == ["1"]


def test_tree_cache_change_log_and_recursive_deletes(store: KVStore, etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache

    root = f"{etcd_prefix}log"
    store.set(f"{root}/a/object", "1")
    store.set(f"{root}/a/sub/x", "2")
    store.set(f"{root}/b/object", "3")
    cache = TreeCache(store, root, watch_timeout=0.3)
    cache.step()  # loads
    version, changed = cache.changes_since(-1)
    assert changed is None  # from before the read: read everything
    assert cache.changes_since(version) == (version, {})
    store.delete(f"{root}/a", recursive=True)
    store.set(f"{root}/b/target", "m1")
    while cache.index < store.current_index():
        cache.step()
    now, changed = cache.changes_since(version)
    assert now > version and changed is not None
    assert {f"{root}/a/object", f"{root}/a/sub/x", f"{root}/b/target"} <= changed.keys()
    assert changed[f"{root}/a/object"] is None and changed[f"{root}/b/target"] == cache.get(f"{root}/b/target")
    assert [n.key for n in cache.nodes()] == [f"{root}/b/object", f"{root}/b/target"]


def test_tree_cache_empties_when_its_root_or_an_ancestor_is_deleted(store: KVStore, etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache

    for root, deleted in ((f"{etcd_prefix}r1/m", f"{etcd_prefix}r1/m"), (f"{etcd_prefix}r2/m", f"{etcd_prefix}r2")):
        store.set(f"{root}/object", "1")
        store.set(f"{root}/metadata/k", "v")
        cache = TreeCache(store, root, watch_timeout=0.3)
        cache.step()  # loads
        store.delete(deleted, recursive=True)
        while cache.index < store.current_index():
            cache.step()
        assert cache.nodes() == []


def test_job_view_decodes_changes_as_a_full_decode_would(store: KVStore, etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache
    from fleetpy.registry.decode import decode_jobs
    from fleetpy.registry.jobview import JobView
    from fleetpy.registry.keys import Keys, Tree

    keys = Keys(etcd_prefix)
    obj = '{"Name":"%s","UnitHash":[' + ",".join(["1"] * 20) + "]}"
    for name in ("a.service", "b.service", "c.service"):
        store.set(keys.job_object(name), obj % name)
        store.set(keys.target_state(name), "launched")
    cache = TreeCache(store, keys.tree(Tree.JOB), watch_timeout=0.3)
    cache.step()  # loads
    view = JobView(cache, keys)
    assert set(view.records()) == {"a.service", "b.service", "c.service"}
    store.set(keys.target("a.service"), "m1")
    store.set(keys.target_state("b.service"), "inactive")
    store.delete(keys.job_dir("c.service"), recursive=True)
    store.set(keys.job_object("d.service"), obj % "d.service")
    while cache.index < store.current_index():
        cache.step()
    assert view.records() == decode_jobs(keys, cache.nodes())
    assert view.records()["a.service"].target == "m1" and "c.service" not in view.records()


def test_job_view_of_a_machine_keeps_what_concerns_it(store: KVStore, etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache
    from fleetpy.registry.decode import decode_jobs
    from fleetpy.registry.jobview import JobView
    from fleetpy.registry.keys import Keys, Tree

    keys = Keys(etcd_prefix)
    obj = '{"Name":"%s","UnitHash":[' + ",".join(["1"] * 20) + "]}"
    for name in ("a.service", "b.service", "c.service", "f.service"):
        store.set(keys.job_object(name), obj % name)
    store.set(keys.target("a.service"), "m1")
    store.set(keys.target("f.service"), "m2")
    cache = TreeCache(store, keys.tree(Tree.JOB), watch_timeout=0.3)
    cache.step()  # loads
    view = JobView(cache, keys, "m1")
    view.sync()
    assert set(view.mine()) == {"a.service", "b.service", "c.service"}  # f is another machine's

    store.set(keys.target("b.service"), "m2")  # scheduled elsewhere
    store.set(keys.job_state("f.service"), "m1")  # a heartbeat naming this machine
    store.delete(keys.target("a.service"))  # unscheduled again
    store.delete(keys.job_dir("c.service"), recursive=True)
    store.set(keys.target("e.service"), "m1")  # a target before its object: no record yet
    while cache.index < store.current_index():
        cache.step()
    view.sync()
    full = decode_jobs(keys, cache.nodes())
    assert view.mine() == {n: full[n] for n in ("a.service", "f.service")}
    store.set(keys.job_object("e.service"), obj % "e.service")
    store.set(keys.target_state("a.service"), "launched")
    while cache.index < store.current_index():
        cache.step()
    view.sync()
    full = decode_jobs(keys, cache.nodes())
    assert view.mine() == {n: full[n] for n in ("a.service", "e.service", "f.service")}
    assert JobView(cache, keys).records() == full



def test_job_view_of_a_machine_leaves_out_unscheduled_units_known_not_global(store: KVStore,
                                                                             etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache
    from fleetpy.registry.jobview import JobView
    from fleetpy.registry.keys import Keys, Tree

    keys = Keys(etcd_prefix)
    obj = '{"Name":"%s","UnitHash":[' + ",".join(["1"] * 20) + "]}"
    for name in ("plain.service", "global.service"):
        store.set(keys.job_object(name), obj % name)
    cache = TreeCache(store, keys.tree(Tree.JOB), watch_timeout=0.3)
    cache.step()  # loads
    known_plain: set[str] = set()  # bodies read so far: these objects' units are not global
    view = JobView(cache, keys, "m1", lambda raw: raw not in known_plain)
    view.sync()
    assert set(view.mine()) == {"plain.service", "global.service"}  # bodies unknown: either may be global
    known_plain.add(obj % "plain.service")
    view.refilter()
    assert set(view.mine()) == {"global.service"}
    store.set(keys.target("plain.service"), "m1")  # scheduled here: this machine's again
    store.set(keys.job_object("late.service"), obj % "plain.service")  # an object already known plain
    while cache.index < store.current_index():
        cache.step()
    view.sync()
    assert set(view.mine()) == {"plain.service", "global.service"}
    store.delete(keys.target("plain.service"))  # unscheduled: known plain, so not this machine's concern
    while cache.index < store.current_index():
        cache.step()
    view.sync()
    assert set(view.mine()) == {"global.service"}

def test_cache_reread_logs_only_what_differs(store: KVStore, etcd_prefix: str) -> None:
    from fleetpy.registry.cache import TreeCache

    root = f"{etcd_prefix}tree"
    for key in ("a", "b", "c"):
        store.set(f"{root}/{key}", "1")
    cache = TreeCache(store, root, watch_timeout=0.3)
    cache.reload()
    version = cache.version
    assert cache.changes_since(version - 1)[1] is None  # nothing known before the first read
    store.set(f"{root}/a", "2")
    store.set(f"{root}/b", "1")  # same value, new modified index: a change all the same
    store.delete(f"{root}/c")
    store.set(f"{root}/d", "1")
    cache.reload()  # the events are never read: the re-read alone must tell what changed
    now, changed = cache.changes_since(version)
    assert now == version + 1 and changed is not None
    assert changed == {key: cache.get(key) for key in (f"{root}/a", f"{root}/b", f"{root}/c", f"{root}/d")}
    assert changed[f"{root}/c"] is None and changed[f"{root}/a"] is not None and changed[f"{root}/a"].value == "2"
    cache.reload()
    assert cache.changes_since(version + 1) == (version + 2, {})


def test_cache_change_log_overflow_asks_for_a_full_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetpy.registry import cache as cache_module
    from fleetpy.registry.store import Event, Node

    monkeypatch.setattr(cache_module, "CHANGE_LOG", 3)
    cache = cache_module.TreeCache(MemoryStore(), "/t")
    cache.reload()
    start = cache.version
    for i in range(7):  # the 7th change drops the 3 oldest
        cache.apply(Event(Action.SET, Node(f"/t/k{i}", "v", 10 + i)))
    assert cache.changes_since(start)[1] is None
    assert cache.changes_since(start + 2)[1] is None  # the 3rd change is gone too
    version, changed = cache.changes_since(start + 3)
    assert version == start + 7 and changed is not None and sorted(changed) == [f"/t/k{i}" for i in range(3, 7)]
