"""``JobFeed`` over the in-memory store, driven by hand (no threads): a reset or a new sender is judged by one read
of the lease in the inbox's callback, entering the relay with one re-read of the job tree; an unreadable lease
then means the watch, and the periodic check keeps the mode."""

from __future__ import annotations

import pytest

from fleetpy.agent.feed import JobFeed, Mode
from fleetpy.errors import RegistryError
from fleetpy.model.records import Lease
from fleetpy.registry import relayed
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Action, Event, Node
from fleetpy.testing import MemoryStore

ME, LEADER, OTHER = "m" * 32, "l" * 32, "o" * 32


class Feed:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.registry = Registry(self.store, "/test/")
        self.feed = JobFeed(self.registry, ME)
        self.feed.announce()
        self.reloads = 0
        reload = self.feed.jobs.reload

        def counted() -> None:
            self.reloads += 1
            reload()
        self.feed.jobs.reload = counted  # type: ignore[method-assign]
        self.feed.jobs.reload()
        self.reloads = 0

    def lead(self, machine: str) -> None:
        assert self.registry.acquire_lease(machine, 1, ttl=30) is not None

    def message(self, leader: str, *, reset: bool = False, term: str = "t1") -> None:
        value = relayed.encode(relayed.Relayed(leader, term, 1, reset=reset))
        node = self.store.set(self.feed.inbox.prefix, value)
        self.feed._message(Event(Action.SET, Node(node.key, value, node.modified_index)))


def test_a_reset_from_the_lease_holder_enters_the_relay_with_one_reread() -> None:
    f = Feed()
    f.lead(LEADER)
    f.message(LEADER, reset=True)
    assert f.feed.mode is Mode.RELAY and f.reloads == 1
    f.message(LEADER)  # a plain message from the trusted sender: taken, no re-read
    assert f.feed.mode is Mode.RELAY and f.reloads == 1
    f.message(LEADER, reset=True, term="t2")  # a new term while relaying: one re-read, not two
    assert f.feed.mode is Mode.RELAY and f.reloads == 2


def test_a_sender_that_does_not_hold_the_lease_is_not_followed() -> None:
    f = Feed()
    f.lead(OTHER)
    f.message(LEADER, reset=True)
    assert f.feed.mode is Mode.WATCH


@pytest.mark.parametrize("relaying", [False, True])
def test_an_unreadable_lease_on_a_reset_means_the_watch(monkeypatch: pytest.MonkeyPatch, relaying: bool) -> None:
    f = Feed()
    f.lead(LEADER)
    if relaying:
        f.message(LEADER, reset=True)
        assert f.feed.mode is Mode.RELAY

    def fail() -> Lease | None:
        raise RegistryError("etcd unreachable")
    monkeypatch.setattr(f.registry, "lease", fail)
    f.message(OTHER, reset=True)
    assert f.feed.mode is Mode.WATCH


def test_an_unreadable_lease_on_the_periodic_check_keeps_the_relay(monkeypatch: pytest.MonkeyPatch) -> None:
    f = Feed()
    f.lead(LEADER)
    f.message(LEADER, reset=True)

    def fail() -> Lease | None:
        raise RegistryError("etcd unreachable")
    monkeypatch.setattr(f.registry, "lease", fail)
    f.feed.check()
    assert f.feed.mode is Mode.RELAY
