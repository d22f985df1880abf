"""Fixtures for a real etcd: one server per test session, a unique key prefix per test.

Without an etcd binary the etcd tests skip locally and fail in CI (CI=true), so a missing install step shows.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import KVStore
from fleetpy.testing import EtcdServer, etcd_binary

_counter = itertools.count()


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    if etcd_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("etcd binary missing in CI: apt-get install etcd-server")
        pytest.skip("etcd not installed")
    server = EtcdServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def etcd_prefix() -> str:
    return f"/fleetpy-test/{os.getpid()}-{next(_counter)}/"


@pytest.fixture
def etcd_store(etcd_server: EtcdServer, etcd_prefix: str) -> Iterator[EtcdStore]:
    store = EtcdStore(etcd_server.url, timeout=3.0)
    yield store
    try:
        store.delete(etcd_prefix.rstrip("/"), recursive=True)
    except Exception:
        pass
    store.close()


@pytest.fixture(params=["memory", "etcd"])
def store(request: pytest.FixtureRequest, etcd_prefix: str) -> Iterator[KVStore]:
    """The KVStore contract is run against both backends."""
    if request.param == "memory":
        yield MemoryStore()
    else:
        yield request.getfixturevalue("etcd_store")


@pytest.fixture
def registry(store: KVStore, etcd_prefix: str) -> Registry:
    return Registry(store, etcd_prefix)
