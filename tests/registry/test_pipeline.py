"""Pipelined requests on one LeanPool connection: windows, order, reuse, a connection lost half-way. The store
contract suite runs ``EtcdStore.set_many`` (which uses them) against a real etcd."""

from __future__ import annotations

import socket

import pytest
from urllib3.exceptions import ProtocolError

from fleetpy.errors import RegistryUnavailable
from fleetpy.registry import pipeline
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.pipeline import pipelined
from tests.registry.test_http import Lean, Serve, lean, ok, serve

__all__ = ["lean", "serve"]  # fixtures
W = pipeline.WINDOW


@pytest.mark.parametrize(("sizes", "windows"), [
    pytest.param([], [], id="none"),
    pytest.param([10] * 3, [(0, 3)], id="one-window"),
    pytest.param([10] * (2 * W + 2), [(0, W), (W, 2 * W), (2 * W, 2 * W + 2)], id="by-count"),
    pytest.param([40_000, 40_000, 10], [(0, 1), (1, 3)], id="by-bytes"),
    pytest.param([100_000, 10], [(0, 1), (1, 2)], id="a-big-request-alone"),
])
def test_windows(sizes: list[int], windows: list[tuple[int, int]]) -> None:
    assert pipeline._windows([b"x" * n for n in sizes]) == windows


def test_requests_go_in_order_on_one_connection_and_answers_come_back_in_order(serve: Serve, lean: Lean) -> None:
    server = serve(lambda req: ok(req.split(b" ")[1]))  # answers with the request's path
    pool = lean(timeout=2)
    requests = [(f"/v2/keys/k{i}", f"value={i}".encode()) for i in range(150)]
    responses = pipelined(pool, "PUT", server.url, requests, {"Authorization": "Basic eA=="}, timeout=2)
    assert [r.data for r in responses] == [path.encode() for path, _ in requests]
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"PUT /v2/keys/k0 HTTP/1.1\r\n") and first.endswith(b"\r\n\r\nvalue=0")
    assert b"Content-Type: application/x-www-form-urlencoded\r\n" in first and b"Authorization: Basic eA==" in first
    pipelined(pool, "PUT", server.url, requests[:2], {}, timeout=2)
    assert server.connections == 1  # the connection went back to the pool


def test_a_connection_lost_half_way_raises_and_is_not_reused(serve: Serve, lean: Lean) -> None:
    seen: list[bytes] = []

    def answer(req: bytes) -> list[bytes] | None:
        seen.append(req)
        return None if len(seen) == 5 else ok(b"{}")
    server = serve(answer)
    pool = lean(timeout=2)
    with pytest.raises(ProtocolError):
        pipelined(pool, "PUT", server.url, [(f"/k{i}", b"value=1") for i in range(10)], {}, timeout=2)
    assert len(seen) == 5
    pipelined(pool, "PUT", server.url, [("/again", b"value=1")], {}, timeout=2)
    assert server.connections == 2


def test_set_many_with_etcd_unreachable_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = EtcdStore(f"http://127.0.0.1:{port}", timeout=1)
    with pytest.raises(RegistryUnavailable):
        store.set_many([[("/a", "1")], [("/b", "2")]])
