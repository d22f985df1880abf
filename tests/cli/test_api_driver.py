"""``--driver=api``: the same commands and the same bytes through fleet's HTTP API (fleetpy's API server over the
test's etcd keyspace, on a unix socket and on TCP)."""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from fleetpy.api.server import ApiServer
from fleetpy.registry.registry import Registry
from tests.cli.cluster import Fleetpy, doc_cluster

GOLDEN = pathlib.Path(__file__).parent.parent / "golden" / "fleetctl-1.0"


@pytest.fixture
def api(etcd_registry: Registry) -> Iterator[ApiServer]:
    directory = tempfile.mkdtemp(prefix="fp-cli-api-", dir="/tmp")
    server = ApiServer(etcd_registry, socket_path=f"{directory}/fleet.sock", tcp="127.0.0.1:0")
    server.start()
    yield server
    server.close()
    shutil.rmtree(directory, ignore_errors=True)


def api_cli(server: ApiServer, *, tcp: bool = False) -> Fleetpy:
    if tcp:
        assert server.tcp_address is not None
        host, port = server.tcp_address
        return Fleetpy(f"http://{host}:{port}", "/unused/")
    return Fleetpy(f"unix://{server.socket_path}", "/unused/")


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_list_output_is_the_same_through_the_api(api: ApiServer, etcd_registry: Registry, tcp: bool) -> None:
    doc_cluster(etcd_registry)
    client = api_cli(api, tcp=tcp)
    for golden, args in [("list-units", ["list-units"]), ("list-machines-full", ["list-machines", "--full"]),
                         ("list-unit-files", ["list-unit-files"])]:
        result = client("--driver", "api", *args)
        assert (result.exit_code, result.stderr) == (0, ""), args
        assert result.stdout == (GOLDEN / f"{golden}.txt").read_text(), args


def test_lifecycle_through_the_api(api: ApiServer, etcd_registry: Registry, tmp_path: pathlib.Path) -> None:
    (tmp_path / "hello.service").write_text("[Service]\nExecStart=/bin/sleep 100\n")
    client = api_cli(api)
    started = client("--driver=api", "start", "--no-block", "hello.service", cwd=str(tmp_path))
    assert (started.exit_code, started.stdout) == (0, "Unit hello.service inactive\nTriggered unit hello.service "
                                                      "start\n")
    hello = etcd_registry.unit("hello.service")
    assert hello is not None and hello.target_state.value == "launched"
    assert client("--driver=api", "cat", "hello").stdout == "[Service]\nExecStart=/bin/sleep 100\n"
    assert client("--driver=api", "destroy", "hello").stdout == "Destroyed hello.service\n"
    assert etcd_registry.units() == []
