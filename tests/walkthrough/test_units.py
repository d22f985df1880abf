"""The walkthrough and example units in units/: each parses, passes fleet's name and ``[X-Fleet]`` checks, says
what the walkthrough and the README promise, and passes ``systemd-analyze verify``."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from fleetpy.model.job import Requirements, validate_requirements
from fleetpy.model.names import UnitNameInfo, validate_name
from fleetpy.model.unit import UnitFile
from tests.walkthrough.tools import UNITS, require

OWNED = {
    "mongo.service", "employees.service", "mongo-discovery.service",
    "hello.service", "web@.service", "global-monitor.service", "db-only.service", "app.service",
    "app-sidekick.service", "demo-mongo.service", "demo-employees.service", "demo-mongo-discovery.service",
}
DOCKER_UNITS = {"mongo.service", "employees.service"}
NEEDS_DOCKER = DOCKER_UNITS | {"mongo-discovery.service"}  # bound to mongo.service
ALL = sorted(p.name for p in UNITS.glob("*.service") if p.name != "fleetpyd.service")


def unit(name: str) -> UnitFile:
    return UnitFile.from_path(UNITS / name)


def one(u: UnitFile, section: str, key: str) -> str:
    values = u.values(section, key)
    assert len(values) == 1, (section, key, values)
    return values[0]


def words(u: UnitFile, section: str, key: str) -> list[str]:
    return [w for v in u.values(section, key) for w in v.split()]


def test_every_promised_unit_is_there() -> None:
    assert set(ALL) >= OWNED


@pytest.mark.parametrize("name", ALL)
def test_unit_parses_and_passes_fleet_checks(name: str) -> None:
    validate_name(name)
    u = unit(name)
    validate_requirements(u)
    assert u.description
    assert one(u, "Service", "ExecStart")
    Requirements.of(u, name)


@pytest.mark.parametrize("name", sorted(DOCKER_UNITS))
def test_docker_unit_stops_the_container_it_started(name: str) -> None:
    """The walkthrough's employees.service stopped mongo-ins: ExecStop must name ExecStart's own container."""
    u = unit(name)
    start = shlex.split(one(u, "Service", "ExecStart"))
    assert start[0] == "/opt/bin/docker-run.sh"
    container = start[start.index("--name") + 1]
    assert shlex.split(one(u, "Service", "ExecStop")) == ["/usr/bin/docker", "stop", container]
    assert words(u, "Unit", "After")[0] == "docker.service"
    assert words(u, "Unit", "Requires") == ["docker.service"]
    assert one(u, "Service", "TimeoutStartSec") == "0"
    assert "-d" not in start and "--detach" not in start


def test_mongo_and_employees_as_in_the_walkthrough() -> None:
    mongo, employees = unit("mongo.service"), unit("employees.service")
    assert shlex.split(one(mongo, "Service", "ExecStart")) == [
        "/opt/bin/docker-run.sh", "--name", "mongo-ins", "-p", "27017:27017", "mongo"]
    start = shlex.split(one(employees, "Service", "ExecStart"))
    assert start[1:3] == ["--name", "node-app"]
    assert "mongo-ins:mongo" in start
    assert one(employees, "Service", "ExecStop") == "/usr/bin/docker stop node-app"
    assert employees.xfleet() == {"X-ConditionMachineOf": ["mongo.service"]}
    assert Requirements.of(employees, "employees.service").peers == ("mongo.service",)
    assert "mongo.service" in words(employees, "Unit", "After")
    assert mongo.xfleet() == {}


def test_stand_ins_mirror_the_walkthrough_pair_without_docker() -> None:
    real = unit("employees.service").xfleet()
    stand_in = unit("demo-employees.service").xfleet()
    assert stand_in == {k: [v.replace("mongo.service", "demo-mongo.service") for v in vs] for k, vs in real.items()}
    assert "demo-mongo.service" in words(unit("demo-employees.service"), "Unit", "After")
    assert unit("demo-mongo.service").xfleet() == {}


@pytest.mark.parametrize("name", sorted(set(ALL) - NEEDS_DOCKER))
def test_docker_free_units_run_anywhere(name: str) -> None:
    u = unit(name)
    assert "docker" not in u.contents.lower().replace("no docker", "")
    for key in ("ExecStartPre", "ExecStart", "ExecStopPost"):
        for value in u.values("Service", key):
            assert shlex.split(value)[0] in {"/bin/sh", "/bin/sleep"}, value


def test_template_instances_conflict_with_each_other() -> None:
    name = "web@.service"
    assert UnitNameInfo.of(name).is_template
    req = Requirements.of(unit(name), "web@2.service")
    assert req.conflicts == ("web@*.service",)


def test_global_metadata_and_machineof_examples() -> None:
    assert Requirements.of(unit("global-monitor.service")).is_global
    assert Requirements.of(unit("db-only.service")).metadata == {"role": ("db",)}
    sidekick = unit("app-sidekick.service")
    assert Requirements.of(sidekick).peers == ("app.service",)
    assert words(sidekick, "Unit", "BindsTo") == ["app.service"]
    assert words(sidekick, "Unit", "After") == ["app.service"]
    assert Requirements.of(unit("hello.service")) == Requirements()
    assert Requirements.of(unit("app.service")) == Requirements()


@pytest.mark.parametrize(("name", "peer", "key"), [
    ("mongo-discovery.service", "mongo.service", "services/mongo/%H"),
    ("demo-mongo-discovery.service", "demo-mongo.service", "services/demo-mongo/%H"),
])
def test_discovery_sidekick_follows_its_database(name: str, peer: str, key: str) -> None:
    u = unit(name)
    assert words(u, "Unit", "BindsTo") == [peer]
    assert words(u, "Unit", "After") == [peer]
    assert u.xfleet() == {"MachineOf": [peer]}
    start, stop = one(u, "Service", "ExecStart"), one(u, "Service", "ExecStopPost")
    assert f"curl -sf -X PUT \"$$ep/v2/keys/{key}\"" in start and "ttl=60" in start and "sleep 45" in start
    assert f"curl -sf -X DELETE \"$$ep/v2/keys/{key}\"" in stop
    assert u.values("Service", "EnvironmentFile") == ["-/etc/fleet/fleet.conf"]


# systemd-analyze verify, offline. Messages that only say the Docker side is not installed here are expected.
_EXPECTED = re.compile(r"Unit docker\.service not found|Command /opt/bin/docker-run\.sh is not executable"
                       r"|Command /usr/bin/docker is not executable")


@pytest.mark.parametrize("name", ALL)
def test_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    analyze = require("systemd-analyze", "systemd")
    for other in ALL:
        shutil.copy(UNITS / other, tmp_path / other)
    target = tmp_path / name
    if UnitNameInfo.of(name).is_template:  # a template is verified through an instance of it
        target = tmp_path / name.replace("@.", "@1.")
        shutil.copy(UNITS / name, target)
    proc = subprocess.run([analyze, "verify", "--man=no", str(target)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "SYSTEMD_LOG_LEVEL": "notice"})
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    unexpected = [line for line in lines if not _EXPECTED.search(line)]
    assert unexpected == [], "\n".join(lines)
    if name not in NEEDS_DOCKER:
        assert proc.returncode == 0, "\n".join(lines)
