"""Fixtures for the CLI tests: a registry on a fresh keyspace of the session's real etcd, and a runner on it with
each driver (``fleetpy``: every test that uses it runs twice, ``[etcd]`` and ``[api]``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from tests.cli.cluster import Fleetpy
from tests.cli.drivers import DRIVERS, api_socket


@pytest.fixture
def etcd_registry(etcd_store: EtcdStore, etcd_prefix: str) -> Registry:
    return Registry(etcd_store, etcd_prefix)


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fleetpy(driver: str, etcd_store: EtcdStore, etcd_prefix: str) -> Iterator[Fleetpy]:
    """The CLI on the test's keyspace: directly (``etcd``) or through fleetpyd's API server over it (``api``)."""
    url = etcd_store.endpoints[0]
    if driver == "etcd":
        yield Fleetpy(url, etcd_prefix)
        return
    with api_socket(url, etcd_prefix) as endpoint:
        yield Fleetpy(endpoint, etcd_prefix, driver="api")
