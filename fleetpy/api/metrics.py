"""Prometheus metrics under fleet's names (``fleet_*``), in a registry of their own: no global state.

I/O-free bookkeeping. One ``Metrics`` per fleetpyd, created by the composition root and handed to the agent, the
engine, the API server (``GET /metrics``) and, through ``MeteredStore``, the registry's store. Names follow fleet's
``metrics/metrics.go`` (fleet-reference.md 4.7); the agent counters are fleetpy's own additions under the same
scheme. Counters also expose prometheus_client's ``*_created`` samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

NAMESPACE = "fleet"
ENGINE_FAILURE_REASONS = ("machine_away", "run", "schedule")


class Metrics:
    """fleet's metrics. Every method is thread-safe and cheap; call them from reconcile loops freely."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        reg, ns = self.registry, NAMESPACE
        self.leader_start_time = Gauge("leader_start_time", "Start time of becoming an engine leader since epoch "
                                       "in seconds (0 when not the leader).", namespace=ns, subsystem="engine",
                                       registry=reg)
        self.engine_reconcile_count = Counter("reconcile_count", "Counter of reconcile rounds.", namespace=ns,
                                              subsystem="engine", registry=reg)
        self.engine_reconcile_duration = Histogram("reconcile_duration_second", "Histogram of time (in seconds) "
                                                   "each schedule round takes.", namespace=ns, subsystem="engine",
                                                   registry=reg)
        self.engine_reconcile_failure_count = Counter("reconcile_failure_count", "Counter of scheduling failures.",
                                                      ["type"], namespace=ns, subsystem="engine", registry=reg)
        self.engine_task_count = Counter("task_count", "Counter of engine schedule tasks.", ["type"],
                                         namespace=ns, subsystem="engine", registry=reg)
        self.engine_task_failure_count = Counter("task_failure_count", "Counter of engine schedule task failures.",
                                                 ["type"], namespace=ns, subsystem="engine", registry=reg)
        self.agent_reconcile_count = Counter("reconcile_count", "Counter of agent reconcile rounds.", namespace=ns,
                                             subsystem="agent", registry=reg)
        self.agent_reconcile_duration = Histogram("reconcile_duration_second", "Histogram of time (in seconds) "
                                                  "each agent reconcile round takes.", namespace=ns,
                                                  subsystem="agent", registry=reg)
        self.agent_task_count = Counter("task_count", "Counter of agent tasks.", ["type"], namespace=ns,
                                        subsystem="agent", registry=reg)
        self.agent_task_failure_count = Counter("task_failure_count", "Counter of agent task failures.", ["type"],
                                                namespace=ns, subsystem="agent", registry=reg)
        self.registry_op_count = Counter("operation_count", "Counter of registry operations.", ["type"],
                                         namespace=ns, subsystem="registry", registry=reg)
        self.registry_op_failed_count = Counter("operation_failed_count", "Counter of failed registry operations.",
                                                ["type"], namespace=ns, subsystem="registry", registry=reg)
        self.registry_op_duration = Histogram("operation_duration_second", "Histogram of time (in seconds) each "
                                              "registry operation takes.", ["ops"], namespace=ns,
                                              subsystem="registry", registry=reg)

    # -- what the agent and engine call ---------------------------------------------------------------------
    def reconcile(self, component: str, seconds: float, *, ok: bool = True, reason: str = "run") -> None:
        """One reconcile pass of ``"engine"`` or ``"agent"`` that took ``seconds``. A failed engine pass counts
        under ``engine_reconcile_failure_count_total{type=reason}`` instead (machine_away, run, schedule)."""
        if component == "engine":
            if ok:
                self.engine_reconcile_count.inc()
                self.engine_reconcile_duration.observe(max(seconds, 0.0))
            else:
                self.engine_reconcile_failure_count.labels(reason).inc()
        elif component == "agent":
            self.agent_reconcile_count.inc()
            self.agent_reconcile_duration.observe(max(seconds, 0.0))
        else:
            raise ValueError(f"unknown component {component!r}: expect engine or agent")

    def task(self, component: str, kind: str, ok: bool = True) -> None:
        """One task (``kind`` such as schedule/unschedule or load/start) run by ``"engine"`` or ``"agent"``."""
        kind = str(kind).lower()
        if component == "engine":
            self.engine_task_count.labels(kind).inc()
            if not ok:
                self.engine_task_failure_count.labels(kind).inc()
        elif component == "agent":
            self.agent_task_count.labels(kind).inc()
            if not ok:
                self.agent_task_failure_count.labels(kind).inc()
        else:
            raise ValueError(f"unknown component {component!r}: expect engine or agent")

    def leader(self, is_leader: bool) -> None:
        """The engine became (True: the gauge is set to now) or stopped being (False: 0) the leader."""
        self.leader_start_time.set(self._clock() if is_leader else 0)

    def registry_op(self, op: str, seconds: float, *, ok: bool = True) -> None:
        if ok:
            self.registry_op_count.labels(op).inc()
            self.registry_op_duration.labels(op).observe(max(seconds, 0.0))
        else:
            self.registry_op_failed_count.labels(op).inc()

    @contextmanager
    def timed(self, op: str) -> Iterator[None]:
        """``with metrics.timed("get"): ...`` records a registry operation, failed if the block raises."""
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.registry_op(op, 0.0, ok=False)
            raise
        self.registry_op(op, time.monotonic() - started)

    # -- exposition ---------------------------------------------------------------------------------------------
    content_type = CONTENT_TYPE_LATEST

    def render(self) -> bytes:
        return generate_latest(self.registry)
