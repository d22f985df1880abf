"""``EtcdStore``: the KVStore port over python-etcd (etcd v2 keys API), with safe retries and endpoint failover.

Adapter layer; the only module that imports ``etcd``. urllib3's automatic retries are off (a retried CAS can
report a conflict although the first attempt succeeded: lab-notes.md 1). A request that never reached a server
(connection refused, connect timeout) moves to the next endpoint; an ambiguous failure of a write (read timeout)
is reported, never silently retried. Every request is logged at DEBUG on ``fleetpy.registry`` (``--debug``).
With ``quorum=True`` (the CLI's store) reads go through raft: a member cut off from its quorum fails them instead
of answering from its possibly stale local copy.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import ssl
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit


class _OnFirstUse(types.ModuleType):
    """Stands in ``sys.modules`` for a module until one of its attributes is used, then imports it for real."""

    def __getattr__(self, name: str) -> Any:
        parent, _, child = self.__name__.rpartition(".")
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)
        setattr(sys.modules[parent], child, real)
        return getattr(real, name)


def _defer_dns_resolver() -> None:
    """python-etcd imports ``dns.resolver`` (dnspython) only for SRV discovery, which fleetpy never uses: it is
    imported on first use instead. Saves ~55 ms of every CLI command (measured with ``python -X importtime``)."""
    if "dns.resolver" in sys.modules or importlib.util.find_spec("dns") is None:
        return
    import dns  # the package itself is small; its resolver module pulls in most of dnspython

    stub = _OnFirstUse("dns.resolver")
    sys.modules["dns.resolver"] = stub
    setattr(dns, "resolver", stub)  # noqa: B010  # what the import system does for a loaded submodule


_defer_dns_resolver()

import etcd
import urllib3

from fleetpy.errors import CASConflict, NotFound, RegistryError, RegistryUnavailable
from fleetpy.parallel import pmap
from fleetpy.registry.answers import Stream, describe, event_of, from_json, leaves, node_of
from fleetpy.registry.endpoints import TLSConfig, parse_endpoints
from fleetpy.registry.http import LeanPool
from fleetpy.registry.pipeline import pipelined
from fleetpy.registry.store import Event, IndexCleared, Listing, Node, create_each

log = logging.getLogger("fleetpy.registry")
logging.getLogger("etcd").setLevel(logging.CRITICAL)  # python-etcd logs every failure as ERROR; we report once
logging.getLogger("etcd.client").setLevel(logging.CRITICAL)
logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # "pool is full, discarding": harmless

T = TypeVar("T")
PIPELINES = 4  # connections a ``set_many`` writes on at once (x pipeline.WINDOW requests in flight): etcd commits
# concurrent requests together, but a deeper queue makes everyone else wait behind it. 2,000 writes to an idle etcd:
# 0.14-0.23 s on 16 x 64 in flight, 0.28-0.30 s on 4 x 16; a 1,000-unit start on 10 lab nodes, the engine's writes
# queued behind 1,024 of the CLI's: all scheduled 0.6-2.4 s after the last unit was written, all active in a median
# 5.29 s (12 runs), on 4 x 16: 0.1-1.1 s after, median 4.80 s (12 runs, alternating)
PIPELINE_MIN = 32  # ...each carrying at least this many writes (a few writes: one connection, no threads)


class EtcdStore:
    def __init__(self, endpoints: str | Sequence[str], *, timeout: float = 3.0, tls: TLSConfig | None = None,
                 username: str = "", password: str = "", quorum: bool = False) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self.timeout = timeout
        self._read_options: dict[str, Any] = {"quorum": True} if quorum else {}
        self.tls = tls or TLSConfig()
        self._lock = threading.Lock()
        self._current = 0
        self._clients = [self._client(url, username, password) for url in self.endpoints]
        self.requests = 0

    def _client(self, url: str, username: str, password: str) -> etcd.Client:
        parts = urlsplit(url)
        client = etcd.Client(host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 2379),
                             protocol=parts.scheme, read_timeout=self.timeout, allow_reconnect=False,
                             username=username or None, password=password or None)
        kw: dict[str, Any] = {"num_pools": 4, "maxsize": 16, "retries": False,
                              "timeout": urllib3.Timeout(connect=self.timeout, read=self.timeout)}
        if self.tls.ca_file:
            kw["ca_certs"] = self.tls.ca_file
            kw["cert_reqs"] = ssl.CERT_REQUIRED
        if self.tls.cert_file:
            kw["cert_file"] = self.tls.cert_file
            kw["key_file"] = self.tls.key_file or None
        # plain http: the lean transport (python-etcd stays the client); TLS: urllib3
        client.http = LeanPool(**kw) if parts.scheme == "http" else urllib3.PoolManager(**kw)
        return client

    # -- request plumbing ---------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[etcd.Client], T], *, idempotent: bool) -> T:
        """Run ``fn`` against the current endpoint, failing over to the others where that is safe."""
        errors: list[str] = []
        with self._lock:
            start = self._current
        for step in range(len(self._clients)):
            i = (start + step) % len(self._clients)
            self.requests += 1
            log.debug("etcd %s via %s", what, self.endpoints[i])
            try:
                result = fn(self._clients[i])
            except etcd.EtcdWatchTimedOut:
                raise
            except etcd.EtcdConnectionFailed as err:
                cause = getattr(err, "cause", None)
                errors.append(f"{self.endpoints[i]}: {describe(cause or err)}")
                if not (idempotent or _never_sent(cause)):
                    raise RegistryUnavailable(f"etcd {what} failed ({errors[-1]}); outcome unknown") from err
                continue
            except etcd.EtcdKeyNotFound as err:
                raise NotFound(f"{what}: key not found") from err
            except (etcd.EtcdCompareFailed, etcd.EtcdAlreadyExist, etcd.EtcdNotFile, etcd.EtcdDirNotEmpty,
                    etcd.EtcdNotDir) as err:
                raise CASConflict(f"{what}: {err}") from err
            except etcd.EtcdEventIndexCleared as err:
                raise IndexCleared(str(err)) from err
            except etcd.EtcdInsufficientPermissions as err:
                raise RegistryError(f"etcd {what}: permission denied") from err
            except etcd.EtcdException as err:
                message = str(err) or type(err).__name__
                if "leader" in message.lower() or "timeout" in message.lower():
                    errors.append(f"{self.endpoints[i]}: {message}")
                    if idempotent:
                        continue
                raise RegistryError(f"etcd {what}: {message}") from err
            except (urllib3.exceptions.HTTPError, OSError, ValueError) as err:
                errors.append(f"{self.endpoints[i]}: {describe(err)}")
                if idempotent:
                    continue
                raise RegistryUnavailable(f"etcd {what} failed ({errors[-1]})") from err
            with self._lock:
                self._current = i
            return result
        raise RegistryUnavailable("etcd cluster is unavailable or misconfigured: " + "; ".join(errors))

    # -- KVStore ------------------------------------------------------------------------------------------
    def get(self, key: str) -> Node | None:
        try:
            result = self._call(f"GET {key}", lambda c: c.read(key, **self._read_options), idempotent=True)
        except NotFound:
            return None
        if result.dir:
            return None
        return node_of(result)

    def list(self, prefix: str) -> Listing:
        """A recursive read through python-etcd's request path (``api_execute``: its errors, its failover hooks);
        the answer's JSON is walked here: python-etcd's result object per node cost ~4 us each, and the watch
        caches re-read trees of thousands of nodes."""
        params = {"recursive": "true", "sorted": "true", **{k: "true" for k in self._read_options}}
        try:
            response = self._call(f"GET {prefix} recursive",
                                  lambda c: c.api_execute(c.key_endpoint + prefix, c._MGET, params=params),
                                  idempotent=True)
        except NotFound as err:
            cause = err.__cause__
            payload = getattr(cause, "payload", None) or {}
            return Listing(int(payload.get("index", 0) or 0), ())
        try:
            root = json.loads(response.data)["node"]
        except (ValueError, KeyError, TypeError) as err:
            raise RegistryError(f"etcd GET {prefix}: unreadable answer ({err})") from err
        nodes: list[Node] = []
        if root.get("dir"):
            leaves(root, nodes)
        else:  # a key, not a directory: itself
            nodes.append(from_json(root))
        nodes.sort(key=lambda n: n.key)
        return Listing(int(response.getheader("x-etcd-index") or 0), tuple(nodes))

    def set(self, key: str, value: str, *, ttl: int | None = None, prev_exist: bool | None = None,
            prev_value: str | None = None, prev_index: int | None = None) -> Node:
        kw: dict[str, Any] = {}
        if prev_exist is not None:
            kw["prevExist"] = prev_exist
        if prev_value is not None:
            kw["prevValue"] = prev_value
        if prev_index is not None:
            kw["prevIndex"] = prev_index
        compare = bool(kw)
        result = self._call(f"PUT {key}", lambda c: c.write(key, value, ttl=ttl, **kw), idempotent=not compare)
        return node_of(result)

    def set_many(self, groups: Sequence[Sequence[tuple[str, str]]]) -> None:
        """Plain writes (no TTL, no compare): each group's in order, the groups on up to ``PIPELINES``
        connections at once, each connection's requests pipelined (``fleetpy.registry.pipeline``). Over TLS
        (urllib3, not the lean transport) each write is a ``set``, a connection's share one after another. Every
        write is idempotent, so a connection that fails is retried on the next endpoint."""
        if not groups:
            return
        lean = isinstance(self._clients[0].http, LeanPool)
        pmap(self._pipeline if lean else self._one_by_one, _shares(groups), workers=PIPELINES)

    def create_many(self, items: Sequence[tuple[str, str]]) -> Sequence[bool]:
        """Creates (``prevExist=false``) on up to ``PIPELINES`` connections at once, each connection's requests
        pipelined (over TLS one ``set`` after another). The engine schedules a burst of units this way: one at a
        time through python-etcd, its 1,000 target writes of a 1,000-unit start cost it a third of its CPU."""
        if not items:
            return []
        lean = isinstance(self._clients[0].http, LeanPool)
        results = pmap(self._create_pipelined if lean else self._create_one_by_one,
                       _shares([[item] for item in items]), workers=PIPELINES)
        return [created for share in results for created in share]

    def _create_one_by_one(self, items: Sequence[tuple[str, str]]) -> Sequence[bool]:
        return create_each(self, items)

    def _create_pipelined(self, items: Sequence[tuple[str, str]]) -> Sequence[bool]:
        def do(c: etcd.Client) -> Sequence[bool]:
            created: list[bool] = []
            for response in self._put_pipelined(c, items, "?prevExist=false"):
                try:
                    c._handle_server_response(response)  # raises python-etcd's error for an error answer
                except etcd.EtcdAlreadyExist:
                    created.append(False)
                else:
                    created.append(True)
            return created

        return self._call(f"PUT {len(items)} keys prevExist=false pipelined ({items[0][0]}...)", do,
                          idempotent=False)

    def _one_by_one(self, items: Sequence[tuple[str, str]]) -> None:
        for key, value in items:
            self.set(key, value)

    def _pipeline(self, items: Sequence[tuple[str, str]]) -> None:
        def do(c: etcd.Client) -> None:
            for response in self._put_pipelined(c, items):
                c._handle_server_response(response)  # raises python-etcd's error for an error answer

        self._call(f"PUT {len(items)} keys pipelined ({items[0][0]}...)", do, idempotent=True)

    def _put_pipelined(self, c: etcd.Client, items: Sequence[tuple[str, str]], query: str = "") -> Sequence[Any]:
        """``PUT key<query>`` of each item on one connection, pipelined; the answers (cluster id checked)."""
        requests = [(c.key_endpoint + key + query, urlencode({"value": value}).encode()) for key, value in items]
        self.requests += len(items) - 1  # _call counted one
        try:
            responses = pipelined(c.http, "PUT", c.base_uri, requests, c._get_headers(), timeout=self.timeout)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise etcd.EtcdConnectionFailed(f"Connection to etcd failed due to {err!r}", cause=err) from err
        for response in responses:
            c._check_cluster_id(response)
        return responses

    def refresh(self, key: str, ttl: int) -> Node:
        result = self._call(f"PUT {key} refresh", lambda c: c.refresh(key, ttl, prevExist=True), idempotent=True)
        return node_of(result)

    def delete(self, key: str, *, recursive: bool = False, prev_value: str | None = None,
               prev_index: int | None = None) -> None:
        kw: dict[str, Any] = {}
        if prev_value is not None:
            kw["prevValue"] = prev_value
        if prev_index is not None:
            kw["prevIndex"] = prev_index
        self._call(f"DELETE {key}", lambda c: c.delete(key, recursive=recursive or None, **kw),
                   idempotent=not kw)

    def watch(self, prefix: str, *, after_index: int, timeout: float) -> Event | None:
        def do(c: etcd.Client) -> Any:
            return c.read(prefix, wait=True, waitIndex=after_index + 1, recursive=True, timeout=timeout)

        try:
            result = self._call(f"WATCH {prefix} from {after_index + 1}", do, idempotent=True)
        except etcd.EtcdWatchTimedOut:
            return None
        except NotFound:
            return None
        return event_of(result, int(getattr(result, "etcd_index", 0) or 0))

    def stream(self, prefix: str, *, timeout: float) -> Stream:
        """etcd v2's streaming watch from now (``stream=true``, no ``waitIndex``: newline-separated events on one
        chunked response), which python-etcd does not offer: the request goes through python-etcd's own
        connection pool, headers and error handling; only the reading of the body is ours."""
        def do(c: etcd.Client) -> Any:
            pool = getattr(c.http, "streaming", c.http)  # read as it comes: urllib3 (see fleetpy.registry.http)
            response = pool.request(
                "GET", f"{c.base_uri}{c.key_endpoint}{prefix}",
                fields={"wait": "true", "recursive": "true", "stream": "true"},
                timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout), headers=c._get_headers(),
                preload_content=False, redirect=False, retries=False)
            if response.status != 200:
                c._handle_server_response(response)  # raises python-etcd's error for etcd's answer
            # the head came within the request timeout (a busy etcd may take longer than ``timeout`` to answer);
            # from here on ``timeout`` is the quiet that ends the stream
            sock = getattr(getattr(response, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(timeout)
            return response

        response = self._call(f"WATCH-STREAM {prefix}", do, idempotent=True)
        return Stream(response, prefix)

    def current_index(self) -> int:
        def do(c: etcd.Client) -> Any:
            return c.api_execute(c.key_endpoint + "/", c._MGET)

        response = self._call("GET index", do, idempotent=True)
        return int(response.getheader("x-etcd-index") or 0)

    def close(self) -> None:
        for client in self._clients:
            try:
                client.http.clear()
            except Exception:  # closing must never fail
                pass


def _never_sent(cause: BaseException | None) -> bool:
    return isinstance(cause, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
                      | ConnectionRefusedError)


def _shares(groups: Sequence[Sequence[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    """The groups' writes split, whole groups, into up to ``PIPELINES`` shares of at least ``PIPELINE_MIN``
    writes each (one share per connection)."""
    items = sum(len(group) for group in groups)
    connections = min(PIPELINES, -(-items // PIPELINE_MIN))
    size = -(-len(groups) // connections)
    return [[item for group in groups[i:i + size] for item in group] for i in range(0, len(groups), size)]
