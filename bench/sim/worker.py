"""``python -m bench.sim.worker``: one process hosting many simulated machines, each a real fleetpyd.

Each machine is ``fleetpy.daemon.server.build(...)`` with its own EtcdStore (its own connections to etcd), its own
machine-id, public IP and metadata, a ``FakeUnitManager`` as systemd and ``lock=False``. With ``--engine`` each
machine runs under ``Server.run`` exactly as in fleetpyd (the engine processes host one machine each).

Without it (the worker processes, 250 machines each), what the simulation changes, because a real machine has
its own CPU and memory and here 2 cores carry 1,000 of them, and because CPython collapses with thousands of
threads that each wake up several times a second (measured: 250 unmodified agents, ~3,250 threads, ~1 core idle
and load average > 1,000):

- ``job/`` is followed ONCE per process (``SharedJobs``), not once per agent; each event goes to the agents it
  can matter to (``SharedJobs``: ``Agent._matters``'s rules, applied once per event), whose ``on_job_event``
  sees it as its own cache's (so these agents take no relay: ``job_relay`` is off for them, and with no inbox
  the leader relays nothing to them; the engine processes' machines run with it on). A real agent holds ~16 MB
  of tree for 10,000 units; etcd sees one job-tree watch per process here, not one per machine
  (``machines/<id>/`` stays watched by every agent, with its own connection);
- each agent decodes that copy as it would its own (``JobView``: the units changed since its last pass);
- the agents' passes take turns (one lock per process): one core runs one at a time anyway, but 250 agents woken
  together by a burst all contend for the GIL, and CPython then spends the cores on hand-offs (measured: load
  average > 400 and only 2,093 of 10,000 units active after 300 s, at cb3ca8f);
- each publisher writes to etcd from 2 threads instead of 8 (one pool per process was tried: 250 agents queued on
  its lock) and polls its fake systemd every ``PUBLISHER_POLL`` s instead of 1 s: a fake unit changes only when
  its agent acts, which starts the publisher's fast polls anyway, so the periodic poll never finds anything, and
  250 of them woke the process 500 times a second;
- the supervisor loop of ``Server.run`` (a wake-up every 0.2 s, only to notice a crash) is not run: the worker
  registers each machine and starts its components itself, logging any crash;
- the loops wait for their trigger or their period without waking every 0.1 s to look at ``stop`` (the workers
  are killed, never stopped).

Prints one JSON line when the agents are built (``{"agents": n, "base_rss_kib": ..}``), then runs until its stdin
closes or it is killed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import resource
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

import fleetpy.loop as loop_module
from fleetpy.agent.agent import TRIGGERING, may_be_global
from fleetpy.agent.writer import KeyedWriter
from fleetpy.daemon.config import Config
from fleetpy.daemon.server import Server, build
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.keys import Keys, Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Event, KVStore
from fleetpy.systemd.fake import FakeUnitManager

ROLES = ("web", "web", "web", "db", "cache", "worker", "worker")
REGIONS = ("us", "eu", "ap")


def machine_id(i: int) -> str:
    return hashlib.md5(f"fleetpy-sim-{i}".encode()).hexdigest()


def metadata(i: int) -> dict[str, str]:
    return {"role": ROLES[i % len(ROLES)], "region": REGIONS[(i // len(ROLES)) % len(REGIONS)]}


def public_ip(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


class SharedJobs(TreeCache):
    """One watch-maintained copy of ``job/`` for every agent of the process. Each event goes to the agents it can
    matter to, by the rules of ``Agent._matters`` applied once per event instead of once per agent (250 agents
    asked about each of a 10,000-unit start's 40,000 events cost ~40 CPU-s per worker): a unit's changes to the
    agent of its target machine; unscheduled units' only when the unit is global; removals and re-reads to all
    (each agent checks whether it runs the unit); ``job-state`` heartbeats to none."""

    def __init__(self, store: KVStore, keys: Keys) -> None:
        super().__init__(store, keys.tree(Tree.JOB), on_change=self._changed)
        self.keys = keys
        self.registry = Registry(store, keys.prefix)
        self.listeners: list[Callable[[Event | None], None]] = []
        self.by_machine: dict[str, Callable[[Event | None], None]] = {}

    def add(self, machine_id: str, listener: Callable[[Event | None], None]) -> None:
        self.listeners.append(listener)
        self.by_machine[machine_id] = listener

    def _changed(self, event: Event | None) -> None:
        for listener in self._audience(event):
            listener(event)

    def _audience(self, event: Event | None) -> list[Callable[[Event | None], None]]:
        if event is None or event.action.removes:
            return self.listeners
        parts = self.keys.split(event.node.key)
        if len(parts) < 2 or parts[0] != "job":
            return self.listeners
        if len(parts) == 3 and parts[2] not in TRIGGERING:
            return []
        target = event.node.value if len(parts) == 3 and parts[2] == "target" else \
            getattr(self.peek(self.keys.target(parts[1])), "value", None)
        if target is not None:
            found = self.by_machine.get(target)
            return [found] if found is not None else []
        obj = self.peek(self.keys.job_object(parts[1]))
        global_ = obj is not None and obj.value is not None and may_be_global(obj.value, self.registry.body)
        return self.listeners if global_ else []  # (may be: each agent decides)


def wait_without_polling(trigger: loop_module.Trigger, interval: float, stop: threading.Event) -> None:
    """``fleetpy.loop._wait`` without its 0.1 s look at ``stop`` (simulated machines are killed, not stopped)."""
    if not stop.is_set():
        trigger.wait(interval)


def start(server: Server, stop: threading.Event) -> None:
    """What ``Server.run`` does before its supervisor loop: register, adopt states, start every component."""
    server.register(stop)
    server.publisher.adopt(rewrite=server.heart.created)
    components: list[tuple[str, Callable[[threading.Event], None]]] = [
        *((f"watch:{c.prefix}", c.run) for c in server.caches),
        ("agent", server.agent.run), ("publisher", server.publisher.run), ("heart", server.heart.run)]
    for name, fn in components:
        def body(name: str = name, fn: Callable[[threading.Event], None] = fn) -> None:
            try:
                fn(stop)
            except Exception:
                logging.getLogger("bench.sim").exception("machine %s: component %s crashed", server.machine_id,
                                                         name)
        threading.Thread(target=body, name=f"{name}-{server.machine_id[:8]}", daemon=True).start()


PASSES = threading.Lock()  # one agent pass at a time in this process
PUBLISHER_POLL = 5.0


def _taking_turns(step: Callable[..., Any]) -> Callable[..., Any]:
    def turn(*args: Any, **kwargs: Any) -> Any:
        with PASSES:
            return step(*args, **kwargs)
    return turn


def build_machine(index: int, *, endpoint: str, prefix: str, engine: bool, shared: SharedJobs | None,
                  writers: int, extra: Mapping[str, Any]) -> Server:
    config = Config(etcd_servers=(endpoint,), etcd_key_prefix=prefix, metadata=metadata(index),
                    public_ip=public_ip(index), disable_engine=not engine, units_directory="/nonexistent/sim",
                    **{"job_relay": shared is None, **extra})
    store = EtcdStore([endpoint], timeout=config.etcd_request_timeout)
    server = build(config, store=store, manager=FakeUnitManager(), machine_id=machine_id(index), lock=False)
    if shared is not None:
        agent = server.agent  # its pass, but not the waits for quiet within it
        agent.desired = _taking_turns(agent.desired)  # type: ignore[method-assign]
        agent.execute = _taking_turns(agent.execute)  # type: ignore[method-assign]
        own = server.agent.jobs
        server.agent.jobs = shared
        server.caches = [c for c in server.caches if c is not own]
        shared.add(server.machine_id, server.agent.on_job_event)
    if writers:
        server.publisher.poll_interval = PUBLISHER_POLL
        server.publisher.writer.close(timeout=0.1)
        server.publisher.writer = KeyedWriter(workers=writers, name=f"publisher-{server.machine_id[:8]}",
                                              store=server.publisher.registry.store)
    return server


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim.worker")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--first", type=int, required=True, help="index of the first machine")
    parser.add_argument("--count", type=int, required=True, help="machines in this process")
    parser.add_argument("--engine", action="store_true", help="enable the engine on these machines")
    parser.add_argument("--unmodified", dest="share", action="store_false",
                        help="no sharing: every machine exactly as fleetpyd runs it (Server.run)")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--switch-interval", type=float, default=0.0, help="sys.setswitchinterval (s)")
    parser.add_argument("--log", default="")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--config", default="{}", help="JSON of extra Config fields (agent_ttl, ...)")
    args = parser.parse_args(argv)
    if args.nice:
        os.nice(args.nice)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.basicConfig(level=args.log_level, filename=args.log or None,
                        format="%(asctime)s %(threadName)s %(name)s: %(message)s")
    base = rss_kib()
    stop = threading.Event()
    shared = None
    writers = 0
    engine = args.engine
    if args.share and not engine:
        shared = SharedJobs(EtcdStore([args.endpoint], timeout=10.0), Keys(args.prefix))
        loop_module._wait = wait_without_polling
        threading.Thread(target=shared.run, args=(stop,), name="shared-jobs", daemon=True).start()
        writers = 2
    servers = [build_machine(i, endpoint=args.endpoint, prefix=args.prefix, engine=engine, shared=shared,
                             writers=writers, extra=json.loads(args.config))
               for i in range(args.first, args.first + args.count)]
    for server in servers:
        if shared is None:
            threading.Thread(target=server.run, args=(stop,), name=f"server-{server.machine_id[:8]}",
                             daemon=True).start()
        else:
            start(server, stop)
    print(json.dumps({"agents": len(servers), "base_rss_kib": base}), flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or kills us)
    except KeyboardInterrupt:
        pass
    os._exit(0)  # no purge: etcd is thrown away with the simulation


if __name__ == "__main__":
    sys.exit(main())
