"""The metrics port the agent and the engine report to (``fleetpy.api.metrics.Metrics`` implements it for
``/metrics``; ``NULL`` ignores everything). Keeps the reconcilers free of any Prometheus import."""

from __future__ import annotations

from typing import Protocol


class PassMetrics(Protocol):
    def reconcile(self, component: str, seconds: float, *, ok: bool = True, reason: str = "run") -> None: ...

    def task(self, component: str, kind: str, ok: bool = True) -> None: ...

    def leader(self, is_leader: bool) -> None: ...


class NullMetrics:
    def reconcile(self, component: str, seconds: float, *, ok: bool = True, reason: str = "run") -> None:
        pass

    def task(self, component: str, kind: str, ok: bool = True) -> None:
        pass

    def leader(self, is_leader: bool) -> None:
        pass


NULL: PassMetrics = NullMetrics()
