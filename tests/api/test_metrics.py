"""``Metrics`` keeps fleet's names in its own registry; ``/metrics`` parses as Prometheus text; MeteredStore counts."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from fleetpy.api.metered import MeteredStore
from fleetpy.api.metrics import Metrics
from fleetpy.api.server import ApiServer
from fleetpy.errors import NotFound, RegistryUnavailable
from fleetpy.registry.memory import MemoryStore
from fleetpy.registry.registry import Registry
from tests.api.conftest import Wire, make_unit

FLEET_NAMES = {
    "fleet_engine_reconcile_count", "fleet_engine_reconcile_duration_second", "fleet_engine_task_count",
    "fleet_engine_task_failure_count", "fleet_engine_leader_start_time", "fleet_engine_reconcile_failure_count",
    "fleet_registry_operation_count", "fleet_registry_operation_failed_count",
    "fleet_registry_operation_duration_second", "fleet_agent_reconcile_count", "fleet_agent_task_count",
}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_names_types_and_isolation() -> None:
    metrics = Metrics(clock=lambda: 1234.0)
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}
    assert set(families) >= FLEET_NAMES
    assert families["fleet_engine_reconcile_duration_second"] == "histogram"
    assert families["fleet_engine_leader_start_time"] == "gauge"
    assert families["fleet_engine_task_count"] == "counter"
    assert not any(name.startswith("fleet_") for name in REGISTRY._names_to_collectors)  # no global registry
    Metrics()  # a second instance does not clash


def test_methods_move_the_right_samples() -> None:
    metrics = Metrics(clock=lambda: 1234.0)
    metrics.reconcile("engine", 0.2)
    metrics.reconcile("engine", 1.0, ok=False, reason="machine_away")
    metrics.reconcile("agent", 0.01)
    metrics.task("engine", "AttemptToSchedule")
    metrics.task("engine", "attempttoschedule", ok=False)
    metrics.task("agent", "start", True)
    metrics.leader(True)
    metrics.registry_op("get", 0.001)
    metrics.registry_op("set", 0.0, ok=False)
    got = _samples(metrics.render().decode())
    assert got[("fleet_engine_reconcile_count_total", ())] == 1
    assert got[("fleet_engine_reconcile_duration_second_count", ())] == 1
    assert got[("fleet_engine_reconcile_failure_count_total", (("type", "machine_away"),))] == 1
    assert got[("fleet_agent_reconcile_count_total", ())] == 1
    assert got[("fleet_engine_task_count_total", (("type", "attempttoschedule"),))] == 2
    assert got[("fleet_engine_task_failure_count_total", (("type", "attempttoschedule"),))] == 1
    assert got[("fleet_agent_task_count_total", (("type", "start"),))] == 1
    assert got[("fleet_engine_leader_start_time", ())] == 1234.0
    assert got[("fleet_registry_operation_count_total", (("type", "get"),))] == 1
    assert got[("fleet_registry_operation_failed_count_total", (("type", "set"),))] == 1
    metrics.leader(False)
    assert _samples(metrics.render().decode())[("fleet_engine_leader_start_time", ())] == 0
    with pytest.raises(ValueError):
        metrics.reconcile("scheduler", 1.0)
    with pytest.raises(ValueError):
        metrics.task("scheduler", "x")


def test_metered_store_counts_registry_operations() -> None:
    metrics = Metrics()
    registry = Registry(MeteredStore(MemoryStore(), metrics))
    registry.create_unit(make_unit())
    assert registry.units()
    registry.destroy_unit("hello.service")
    with pytest.raises(NotFound):
        registry.store.delete("/nope")
    got = _samples(metrics.render().decode())
    assert got[("fleet_registry_operation_count_total", (("type", "set"),))] >= 3
    assert got[("fleet_registry_operation_count_total", (("type", "get_all"),))] >= 2
    assert got[("fleet_registry_operation_count_total", (("type", "delete"),))] >= 2
    assert ("fleet_registry_operation_failed_count_total", (("type", "delete"),)) not in got


def test_metered_store_counts_failures() -> None:
    class Down(MemoryStore):
        def get(self, key: str) -> None:
            raise RegistryUnavailable("down")

    metrics = Metrics()
    store = MeteredStore(Down(), metrics)
    with pytest.raises(RegistryUnavailable), metrics.timed("other"):
        store.get("/x")
    got = _samples(metrics.render().decode())
    assert got[("fleet_registry_operation_failed_count_total", (("type", "get"),))] == 1
    assert got[("fleet_registry_operation_failed_count_total", (("type", "other"),))] == 1


def test_metrics_endpoint_parses(mwire: Wire, memory_server: ApiServer) -> None:
    memory_server.metrics.reconcile("engine", 0.5)
    reply = mwire.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    got = _samples(reply.body.decode())
    assert got[("fleet_engine_reconcile_count_total", ())] == 1
    assert {name for name, _ in got} >= {"fleet_engine_leader_start_time", "fleet_engine_reconcile_count_total"}
