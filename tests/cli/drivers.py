"""The two client drivers the CLI suite runs under: ``etcd`` (the CLI talks to etcd) and ``api`` (the CLI talks to
fleet's HTTP API, served over the test's etcd keyspace as fleetpyd serves it).

For ``api`` the server is fleetpyd's own composition (``fleetpy.daemon.server.build_api`` on a metered EtcdStore and
a Registry at the test's key prefix, a unix socket under /tmp), in process: a whole fleetpyd would also register a
machine and run an agent and an engine, which would fight the recorded clusters and the FakeCluster these tests
write. The lab tests (test_restart_lab.py) reach a real node's fleetpyd socket instead.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fleetpy.api.metered import MeteredStore
from fleetpy.api.metrics import Metrics
from fleetpy.daemon.config import Config
from fleetpy.daemon.server import build_api
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry

DRIVERS = ("etcd", "api")


@contextmanager
def api_socket(etcd_url: str, prefix: str) -> Iterator[str]:
    """fleetpyd's API server over ``prefix`` of the etcd at ``etcd_url``; yields its ``unix://`` endpoint."""
    directory = tempfile.mkdtemp(prefix="fp-cli-", dir="/tmp")  # pytest's tmp_path can exceed sun_path's 107 bytes
    metrics = Metrics()
    store = EtcdStore(etcd_url, timeout=3.0)
    config = Config(etcd_servers=(etcd_url,), etcd_key_prefix=prefix, api_socket=f"{directory}/fleet.sock")
    server: Any = build_api(config, Registry(MeteredStore(store, metrics), prefix), metrics)
    server.start()
    try:
        yield f"unix://{config.api_socket}"
    finally:
        server.close()
        store.close()
        shutil.rmtree(directory, ignore_errors=True)
