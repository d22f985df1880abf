"""Shared pytest configuration: fixture plugins for real etcd and the lab."""

pytest_plugins = ["tests.plugins.etcd", "tests.plugins.lab"]
