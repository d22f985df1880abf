"""The composition root of fleetpyd: builds every component from the config and supervises them.

The only module that names concrete classes (EtcdStore, DBusUnitManager, Agent, StatePublisher, Heart, Engine).
Each component runs in its own thread as ``run(stop)``; a component that crashes stops the server. Shutdown
follows fleet (stop and unload every local unit, remove their states and the machine object) unless
``shutdown_keep_units`` is set, in which case units keep running and nothing is removed: states and the machine
object expire after agent_ttl, and an agent restarted within the TTL takes everything over untouched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetpy import __version__
from fleetpy.agent.agent import Agent
from fleetpy.agent.feed import JobFeed
from fleetpy.agent.heart import DuplicateMachineError, Heart
from fleetpy.agent.publisher import StatePublisher
from fleetpy.daemon import netinfo
from fleetpy.daemon.config import Config
from fleetpy.errors import FleetError, RegistryError
from fleetpy.loop import Trigger, when_set
from fleetpy.model.records import MachineState
from fleetpy.registry.cache import TreeCache
from fleetpy.registry.endpoints import TLSConfig
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.keys import Tree
from fleetpy.registry.registry import Registry
from fleetpy.registry.store import Event, KVStore
from fleetpy.systemd.base import UnitManager

log = logging.getLogger("fleetpy.server")

LOCK_NAME = ".fleetpyd.lock"


class Component(Protocol):
    def run(self, stop: threading.Event) -> None: ...


class AlreadyRunning(FleetError):
    """Another fleetpyd holds this machine's agent lock."""


def take_lock(directory: str) -> int:
    """Hold ``<units_directory>/.fleetpyd.lock`` for the process lifetime (one agent per machine)."""
    path = os.path.join(directory, LOCK_NAME)
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise FleetError(f"cannot use the units directory {directory}: {err.strerror or err}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        os.close(fd)
        raise AlreadyRunning(f"another fleetpyd is running on this machine (it holds {path})") from err
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def machine_source(config: Config, machine_id: str) -> Callable[[], MachineState]:
    def current() -> MachineState:
        ip = config.public_ip or netinfo.detect_public_ip()
        return MachineState(id=machine_id, public_ip=ip, metadata=config.metadata, version=__version__,
                            disable_engine=config.disable_engine)
    return current


@dataclass
class Server:
    config: Config
    registry: Registry
    manager: UnitManager
    heart: Heart
    publisher: StatePublisher
    agent: Agent
    caches: list[TreeCache]
    engine: Component | None = None
    feed: JobFeed | None = None  # the agent's copy of job/ fed by the leader's relay (``job_relay``)
    lock_fd: int | None = None
    owns_store: bool = True
    keep_on_stop: bool = False  # set for a SIGHUP rebuild: shut down without touching units or the registry
    crashed: list[str] = field(default_factory=list)
    alarm: threading.Event = field(default_factory=threading.Event)  # set on a stop or a crash: ``run`` ends

    @property
    def machine_id(self) -> str:
        return self.heart.machine_id

    def register(self, stop: threading.Event) -> bool:
        """Register the machine, retrying with backoff (1 s -> 1 min) while etcd is unreachable. Raises
        DuplicateMachineError; False when stopped first."""
        sleep = 1.0
        while not stop.is_set():
            try:
                if self.feed is not None:
                    self.feed.announce()  # before the machine appears: the relay looks for its inbox then
                self.heart.register()
                return True
            except DuplicateMachineError:
                raise
            except RegistryError as err:
                log.warning("registering the machine failed: %s (retrying in %.0f s)", err, sleep)
            if stop.wait(sleep):
                break
            sleep = min(60.0, sleep * 2)
        return False

    def _start(self, name: str, fn: Callable[[threading.Event], None], halt: threading.Event,
               threads: list[threading.Thread]) -> None:
        def body() -> None:
            try:
                fn(halt)
            except Exception:
                log.exception("component %s crashed", name)
                self.crashed.append(name)
                halt.set()
                self.alarm.set()
        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        threads.append(thread)

    def run(self, stop: threading.Event, *, ready: Callable[[], object] | None = None) -> int:
        """Run until ``stop`` (or a component crashes), then shut down by the configured policy. Exit code."""
        if not self.register(stop):
            return 0
        try:
            self.publisher.adopt(rewrite=self.heart.created)
        except FleetError as err:
            log.warning("could not read this machine's previous unit states: %s", err)
        halt = threading.Event()  # the loops
        watch_halt = threading.Event()  # the caches: they outlive the loops until shutdown is done
        loops: list[threading.Thread] = []
        watchers: list[threading.Thread] = []
        if not self.config.disable_watches:
            for cache in self.caches:
                self._start(f"watch:{cache.prefix}", cache.run, watch_halt, watchers)
        self._start("agent", self.agent.run, halt, loops)
        self._start("publisher", self.publisher.run, halt, loops)
        self._start("heart", self.heart.run, halt, loops)
        if self.feed is not None:  # built only with watches on
            self._start("job-feed", self.feed.run, halt, loops)
        if self.engine is not None:
            self._start("engine", self.engine.run, halt, loops)
        log.info("fleetpyd %s running as machine %s (engine %s)", __version__, self.machine_id,
                 "disabled" if self.engine is None else "enabled")
        if ready is not None:
            ready()
        when_set(stop, self.alarm.set, name="stop")
        self.alarm.wait()  # a crashed watch ends the daemon too: its loops would go on blind to the registry
        halt.set()
        # wake the loops now, not at their next tick
        for component in (self.agent, self.publisher, self.engine, self.feed):
            trigger = getattr(component, "trigger", None)
            if isinstance(trigger, Trigger):
                trigger.fire()
        for thread in loops:
            thread.join(30.0)
        self.shutdown()
        watch_halt.set()
        for thread in watchers:
            thread.join(0.5)
        return 1 if self.crashed else 0

    def shutdown(self) -> None:
        ttl = self.config.ttl_seconds
        if self.keep_on_stop:
            self.publisher.close()
            return
        if self.config.shutdown_keep_units:
            log.info("shutting down, keeping units running (shutdown_keep_units): the machine expires within %d s "
                     "unless fleetpyd comes back, and the engine then removes its states", ttl)
            self.publisher.close()
            return
        self.agent.purge()
        if not self.publisher.purge(timeout=10.0):
            log.warning("could not remove every unit state: the engine removes the rest once the machine "
                        "expires (within %d s)", ttl)
        self.publisher.close(timeout=1.0)
        try:
            self.heart.leave()
        except FleetError as err:
            log.warning("could not remove the machine object: %s (it expires within %d s)", err, ttl)

    def close(self) -> None:
        close: Any = getattr(self.manager, "close", None)
        if callable(close):
            close()
        if self.owns_store:
            self.registry.store.close()
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


OnChange = Callable[[Event | None], None]


def _both(first: OnChange, second: OnChange) -> OnChange:
    """One cache callback that calls two (a TreeCache has one)."""
    def call(event: Event | None) -> None:
        first(event)
        second(event)
    return call


def build_api(config: Config, registry: Registry, metrics: Any) -> Any:
    """fleet's HTTP API for this daemon (``api_socket``/``api_tcp``), or None when neither is set. Built once per
    process and kept across SIGHUP rebuilds (its registry is swapped), so its listeners stay open, as fleet's."""
    if not config.api_socket and not config.api_tcp:
        return None
    from fleetpy.api.listeners import systemd_sockets
    from fleetpy.api.server import ApiServer

    return ApiServer(registry, socket_path=config.api_socket or None, tcp=config.api_tcp or None,
                     token_limit=config.token_limit, version=__version__, metrics=metrics,
                     socket_group=config.api_socket_group or None, sockets=systemd_sockets())


def build(config: Config, *, store: KVStore | None = None, manager: UnitManager | None = None,
          machine_id: str | None = None, lock: bool = True, reclaim: bool = False,
          metrics: Any = None) -> Server:
    """Build a server from ``config``. Tests inject ``store``, ``manager`` and ``machine_id``. ``reclaim``: this
    process registered the machine before (SIGHUP rebuild), so its registration is overwritten."""
    machine_id = machine_id or netinfo.machine_id()
    lock_fd = take_lock(config.units_directory) if lock else None
    owns_store = store is None
    try:
        if store is None:
            tls = TLSConfig(ca_file=config.etcd_cafile, cert_file=config.etcd_certfile, key_file=config.etcd_keyfile)
            store = EtcdStore(list(config.etcd_servers), timeout=config.etcd_request_timeout, tls=tls,
                              username=config.etcd_username, password=config.etcd_password)
            if metrics is not None:
                from fleetpy.api.metered import MeteredStore

                store = MeteredStore(store, metrics)
        registry = Registry(store, config.etcd_key_prefix)
        if manager is None:
            from fleetpy.systemd.dbus import DBusUnitManager  # the only place the D-Bus driver is named
            driver = DBusUnitManager(config.units_directory)
            driver.connect()
            manager = driver
        ttl = config.ttl_seconds
        heart = Heart(registry=registry, machine=machine_source(config, machine_id), ttl=ttl,
                      takeover=lock_fd is not None, reclaim=reclaim)
        publisher = StatePublisher(registry=registry, manager=manager, machine_id=machine_id)
        heart.on_register = publisher.republish
        relay = config.job_relay and not config.disable_watches
        interval = config.engine_reconcile_interval
        feed = JobFeed(registry, machine_id, check_interval=min(30.0, max(0.5, 2.5 * interval))) if relay else None
        jobs = feed.jobs if feed is not None else TreeCache(store, registry.keys.tree(Tree.JOB))
        machine_tree = TreeCache(store, registry.keys.machine_dir(machine_id))
        agent = Agent(registry=registry, manager=manager, publisher=publisher, machine=lambda: heart.machine,
                      jobs=jobs, machine_tree=machine_tree, refresh_caches=config.disable_watches)
        if not config.disable_watches:
            jobs.on_change = agent.on_job_event
            machine_tree.on_change = agent.on_machine_event
        if metrics is not None:
            agent.metrics = metrics
        engine: Component | None = None
        if not config.disable_engine:
            from fleetpy.engine.engine import Engine  # built only when enabled (disable_engine=true skips it)
            # with watches on, the engine reads the agent's copy of job/: one watch and one decode of each event
            built = Engine(registry, machine_id, reconcile_interval=interval, agent_ttl=ttl,
                           jobs=None if config.disable_watches else jobs, relay=relay,
                           on_term=feed.set_leading if feed is not None else None)
            if not config.disable_watches:
                jobs.on_change = _both(agent.on_job_event, built.on_job_event)
            if metrics is not None:
                built.metrics = metrics
            engine = built
    except BaseException:
        if lock_fd is not None:
            os.close(lock_fd)
        raise
    caches = [jobs, machine_tree] + ([feed.inbox] if feed is not None else [])
    return Server(config=config, registry=registry, manager=manager, heart=heart, publisher=publisher, agent=agent,
                  caches=caches, engine=engine, feed=feed, lock_fd=lock_fd, owns_store=owns_store)

