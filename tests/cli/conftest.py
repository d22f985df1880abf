"""Fixtures for the CLI tests: a registry on a fresh keyspace of the session's real etcd, and a runner on it."""

from __future__ import annotations

import pytest

from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from tests.cli.cluster import Fleetpy


@pytest.fixture
def etcd_registry(etcd_store: EtcdStore, etcd_prefix: str) -> Registry:
    return Registry(etcd_store, etcd_prefix)


@pytest.fixture
def fleetpy(etcd_store: EtcdStore, etcd_prefix: str) -> Fleetpy:
    return Fleetpy(etcd_store.endpoints[0], etcd_prefix)
