"""Registry cost against a real etcd on loopback: bulk writes, whole-tree reads and single-unit reads at scale,
the requests that every CLI call and reconcile pays for."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench.common import Figure, stopwatch
from fleetpy.model.records import JobState, Unit, UnitState
from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from fleetpy.registry.registry import Registry
from fleetpy.testing import EtcdServer

TEMPLATE = "[Unit]\nDescription=Sleeper %i\n\n[Service]\nExecStart=/bin/sleep infinity\n"


def run(quick: bool) -> list[Figure]:
    n = 1000 if quick else 10000
    machines = [f"{i:032x}" for i in range(1, 11)]
    figures = []
    with EtcdServer(name="bench-registry") as server:
        registry = Registry(EtcdStore(server.url, timeout=10), "/bench/")
        unit_file = UnitFile.parse(TEMPLATE)
        with stopwatch() as elapsed, ThreadPoolExecutor(16) as pool:
            def create(i: int) -> None:
                name = f"sleeper@{i}.service"
                registry.create_unit(Unit(name, unit_file, JobState.LAUNCHED))
                machine = machines[i % len(machines)]
                registry.schedule_unit(name, machine)
                registry.save_unit_state(UnitState(name, machine, "loaded", "active", "running", unit_file.hash), 600)

            list(pool.map(create, range(n)))
        figures.append(Figure("registry", f"write {n} units + targets + states (16 threads)", "s", [elapsed()]))
        for label, fn in [("units()", registry.units), ("unit_states()", registry.unit_states),
                          ("schedule()", registry.schedule)]:
            samples = []
            for _ in range(3 if quick else 5):
                with stopwatch() as t:
                    fn()
                samples.append(t())
            figures.append(Figure("registry", f"{label} at {n} units", "s", samples))
        samples = []
        for i in range(20):
            with stopwatch() as t:
                registry.unit(f"sleeper@{i * 7}.service")
                registry.unit_states(unit_name=f"sleeper@{i * 7}.service")
            samples.append(t())
        figures.append(Figure("registry", f"one unit + its states at {n} units", "s", samples,
                              target="< 0.5 s (status/cat)", target_value=0.5))
    return figures
