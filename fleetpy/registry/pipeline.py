"""``pipelined``: many HTTP/1.1 requests on one keep-alive connection, sent back to back, answers read in order.

Adapter layer, under ``fleetpy.registry.etcd`` (its ``set_many``), on a ``LeanPool`` connection. etcd's HTTP
server reads a connection's requests one after the other and answers them in order, so a window of requests can
go in one ``sendall`` and the answers come back in a few ``recv``s. Why: a command that writes 1,000 units makes
2,000 requests, and one at a time each cost the CLI ~190 us of CPU (python-etcd, a thread switch, a send and a
recv); pipelined ~35 us. On a busy 2-core machine the CLI's CPU sets the pace of a big start.

A window is bounded in requests and bytes, so neither side's socket buffer can fill while the other waits.
Nothing is retried here: a failure raises, and the caller knows which requests may have been applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from fleetpy.registry.http import LeanPool, LeanResponse, Reader, failures_raised, read_one

WINDOW = 16  # requests in flight on the connection (see etcd.PIPELINES)
WINDOW_BYTES = 64 * 1024  # ...and at most this many bytes of them (a window always holds at least one)


def pipelined(pool: LeanPool, method: str, base: str, requests: Sequence[tuple[str, bytes]],
              headers: Mapping[str, str], *, timeout: float | None) -> list[LeanResponse]:
    """Send ``requests`` (``(path with query, form body)``, to the plain-http endpoint ``base``) on one
    connection of ``pool``, in order; their responses in the same order."""
    parts = urlsplit(base)
    if parts.scheme != "http":
        raise ValueError(f"pipelined requests go over plain http only, not {parts.scheme}")
    host, port = parts.hostname or "localhost", parts.port or 80
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    fixed = "".join(f"{name}: {value}\r\n" for name, value in {"Content-Type": "application/x-www-form-urlencoded",
                                                                **headers}.items())
    heads = [f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{fixed}Content-Length: {len(body)}\r\n\r\n"
             .encode("latin-1") + body for path, body in requests]
    sock = pool.connection(host, port, timeout)
    responses: list[LeanResponse] = []
    reader = Reader(sock)
    reusable = True
    with failures_raised(sock, base, timeout):
        sock.settimeout(timeout)
        for start, stop in _windows(heads):
            sock.sendall(b"".join(heads[start:stop]))
            for _ in range(start, stop):
                response, reusable = read_one(reader, False)
                responses.append(response)
                if not reusable and len(responses) < len(heads):
                    raise ValueError("etcd closed the connection in the middle of pipelined requests")
    if reusable and not reader.buffer:
        pool.release(host, port, sock)
    else:
        sock.close()
    return responses


def _windows(heads: Sequence[bytes]) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of at most WINDOW requests and WINDOW_BYTES bytes (at least one request each)."""
    out: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, head in enumerate(heads):
        if i > start and (i - start >= WINDOW or size + len(head) > WINDOW_BYTES):
            out.append((start, i))
            start, size = i, 0
        size += len(head)
    if start < len(heads):
        out.append((start, len(heads)))
    return out
