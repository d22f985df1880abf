"""The lifecycle verbs end to end through the CLI against a real etcd; a FakeCluster thread plays engine and agents
where a command waits."""

from __future__ import annotations

import pathlib

import pytest

from fleetpy.model.records import JobState
from fleetpy.registry.registry import Registry
from tests.cli.cluster import MACHINES, N1, FakeCluster, Fleetpy, add_machines, unit_text

HELLO = unit_text("Hello sleeper (single unit test)")
GLOBAL = "[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nGlobal=true\n"
WEB = unit_text("Web %i", "MachineMetadata=role=web\nConflicts=web@*.service")


@pytest.fixture
def units(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "hello.service").write_text(HELLO)
    (tmp_path / "glob.service").write_text(GLOBAL)
    (tmp_path / "web@.service").write_text(WEB)
    (tmp_path / "failing.service").write_text(unit_text("Always fails", exec_start="/bin/false"))
    (tmp_path / "nowhere.service").write_text(unit_text("Nowhere", "MachineMetadata=role=nothing"))
    return tmp_path


@pytest.fixture
def cluster(etcd_registry: Registry) -> Registry:
    add_machines(etcd_registry)
    return etcd_registry


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_submit(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    result = fleetpy("submit", "hello.service", "glob", cwd=str(units))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Unit hello.service inactive\nUnit glob.service \n"  # fleet prints global units so
    hello = cluster.unit("hello.service")
    assert hello is not None and hello.target_state is JobState.INACTIVE
    again = fleetpy("submit", "hello.service", cwd=str(units))
    assert (again.exit_code, again.stdout, again.stderr) == (0, "", "")


def test_no_units_given(fleetpy: Fleetpy) -> None:
    for verb in ("submit", "load", "start", "stop", "unload", "destroy", "restart"):
        result = fleetpy(verb)
        assert (result.exit_code, result.stderr) == (0, "No units given\n"), verb


def test_start_no_block(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    result = fleetpy("start", "--no-block", "hello.service", "glob.service", "web@1.service", cwd=str(units))
    assert result.exit_code == 0, result.stderr
    assert lines(result.stdout) == [
        "Unit hello.service inactive", "Unit glob.service ", "Unit web@1.service inactive",
        "Triggered global unit glob.service start",
        "Triggered unit hello.service start", "Triggered unit web@1.service start",
    ]
    for name in ("hello.service", "glob.service", "web@1.service"):
        unit = cluster.unit(name)
        assert unit is not None and unit.target_state is JobState.LAUNCHED
    again = fleetpy("start", "--no-block", "hello.service", cwd=str(units))
    assert (again.exit_code, again.stdout) == (0, "")  # already launched: nothing triggered


def test_start_blocking_reports_machine(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    with FakeCluster(cluster):
        result = fleetpy("start", "hello.service", cwd=str(units))
    assert result.exit_code == 0, result.stderr
    assert lines(result.stdout) == ["Unit hello.service inactive",
                                    "Unit hello.service launched on c7ed6caf.../127.0.0.11"]
    listed = fleetpy("list-units", "--no-legend")
    assert listed.stdout == "hello.service\tc7ed6caf.../127.0.0.11\tactive\trunning\n"


def test_load_then_stop_then_unload(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    with FakeCluster(cluster):
        loaded = fleetpy("load", "hello.service", cwd=str(units))
        started = fleetpy("start", "hello.service")
        stopped = fleetpy("stop", "hello.service")
        unloaded = fleetpy("unload", "hello.service")
    assert loaded.stdout.splitlines()[-1] == "Unit hello.service loaded on c7ed6caf.../127.0.0.11"
    assert started.stdout == "Unit hello.service launched on c7ed6caf.../127.0.0.11\n"
    assert (stopped.exit_code, stopped.stdout) == (0, "Unit hello.service loaded on c7ed6caf.../127.0.0.11\n")
    assert stopped.stderr == "Successfully stopped units [hello.service].\n"
    assert (unloaded.exit_code, unloaded.stdout) == (0, "Unit hello.service inactive\n")
    assert unloaded.stderr == "Successfully unloaded units [hello.service].\n"


def test_stop_refuses_inactive_and_ignores_unknown(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    fleetpy("submit", "hello.service", cwd=str(units))
    refused = fleetpy("stop", "hello.service")
    assert (refused.exit_code, refused.stderr) == (1, "Unable to stop unit hello.service in state inactive\n")
    missing = fleetpy("stop", "missing.service")
    assert (missing.exit_code, missing.stderr) == (0, "Units not found in registry\n")


def test_stop_and_unload_no_block(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    with FakeCluster(cluster):
        fleetpy("start", "hello.service", cwd=str(units))
    stopped = fleetpy("stop", "--no-block", "hello.service")
    assert (stopped.stdout, stopped.stderr) == ("Triggered unit hello.service stop\n",
                                                "Successfully stopped units [hello.service].\n")
    unloaded = fleetpy("unload", "--no-block=true", "hello.service")
    assert unloaded.stdout == "Triggered unit hello.service unload\n"


def test_destroy(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    fleetpy("submit", "web@.service", "web@7.service", cwd=str(units))
    result = fleetpy("destroy", "web@7.service", "web@.service", "missing.service")
    assert (result.exit_code, result.stdout) == (0, "Destroyed web@7.service\nDestroyed web@.service\n")
    assert cluster.units() == []
    missing = fleetpy("destroy", "missing.service")
    assert (missing.exit_code, missing.stdout, missing.stderr) == (0, "", "Units not found in registry\n")


def test_unschedulable_unit_shows_reason_then_times_out(fleetpy: Fleetpy, cluster: Registry,
                                                        units: pathlib.Path) -> None:
    with FakeCluster(cluster, unschedulable={"nowhere.service"}):
        result = fleetpy("start", "--block-attempts", "1", "nowhere.service", cwd=str(units))
    assert result.exit_code == 1
    assert result.stderr == (
        "Waiting for unit nowhere.service to report state launched: no machine has metadata role=nothing\n"
        "Error waiting for units: timed out waiting for unit nowhere.service to report state launched "
        "(not scheduled: no machine has metadata role=nothing)\n")


def test_timeout_without_engine(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    result = fleetpy("load", "--block-attempts=1", "hello.service", cwd=str(units))
    assert result.exit_code == 1
    assert result.stderr == "Error waiting for units: timed out waiting for unit hello.service to report state loaded\n"


def test_failing_unit_is_reported(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    with FakeCluster(cluster, failing={"failing.service"}):
        result = fleetpy("start", "failing.service", cwd=str(units))
    assert result.exit_code == 1
    assert "Unit failing.service launched on c7ed6caf.../127.0.0.11" in result.stdout
    assert result.stderr == ("Error waiting for units: Failed to find an active unit failing.service within 2s, "
                             "state: loaded/failed/failed\n")


def test_restart(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    with FakeCluster(cluster):
        fleetpy("start", "hello.service", cwd=str(units))
        restarted = fleetpy("restart", "hello.service")
        fleetpy("stop", "hello.service")
        from_loaded = fleetpy("restart", "hello.service")
    assert restarted.exit_code == 0, restarted.stderr
    assert lines(restarted.stdout) == ["Unit hello.service loaded on c7ed6caf.../127.0.0.11",
                                       "Unit hello.service launched on c7ed6caf.../127.0.0.11"]
    assert lines(from_loaded.stdout) == ["Unit hello.service launched on c7ed6caf.../127.0.0.11"]


def test_restart_refusals(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    fleetpy("submit", "hello.service", cwd=str(units))
    inactive = fleetpy("restart", "hello.service")
    assert (inactive.exit_code, inactive.stderr) == (1, "Unable to restart unit hello.service in state inactive\n")
    missing = fleetpy("restart", "missing.service")
    assert missing.exit_code == 1
    assert missing.stderr == "Error creating units: unable to find Unit(missing.service) in Registry or on filesystem\n"
    no_block = fleetpy("restart", "--no-block", "hello.service")
    assert no_block.exit_code == 1 and "No such option" in no_block.stderr


def test_restart_global_unit_through_registry(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    with FakeCluster(cluster) as fake:
        fleetpy("start", "glob.service", cwd=str(units))
        fake.step()
        assert {s.active_state for s in cluster.unit_states(unit_name="glob.service")} == {"active"}
        result = fleetpy("restart", "--block-attempts", "5", "glob.service")
    assert (result.exit_code, result.stdout) == (0, "Triggered global unit glob.service restart\n")
    glob = cluster.unit("glob.service")
    assert glob is not None and glob.target_state is JobState.LAUNCHED


def test_instances_from_templates(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    sub = units / "sub"
    sub.mkdir()
    (sub / "api@.service").write_text(unit_text("API %i"))
    from_registry = fleetpy("submit", "web@.service", "web@1.service", cwd=str(units))
    assert lines(from_registry.stdout) == ["Unit web@.service inactive", "Unit web@1.service inactive"]
    from_file = fleetpy("submit", "sub/api@2.service", cwd=str(units))
    assert from_file.stdout == "Unit api@2.service inactive\n"
    web, web1, api2 = (cluster.unit(n) for n in ("web@.service", "web@1.service", "api@2.service"))
    assert web is not None and web1 is not None and api2 is not None
    assert web1.hash == web.hash and "API %i" in api2.unit_file.contents
    missing = fleetpy("submit", "nope@1.service", cwd=str(units))
    assert missing.stderr == ("Error creating units: failed getting Unit(nope@1.service) from template: unable to "
                              "find template Unit(nope@.service) in Registry or on filesystem\n")


def test_templates_cannot_be_activated(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    result = fleetpy("start", "--no-block", "hello.service", "web@.service", cwd=str(units))
    assert (result.exit_code, result.stderr) == (1, 'Error: cannot activate template "web@.service"\n')
    assert cluster.units() == []


def test_replace_rules(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    fleetpy("submit", "hello.service", cwd=str(units))
    (units / "hello.service").write_text(unit_text("Hello, changed"))
    warned = fleetpy("submit", "hello.service", cwd=str(units))
    assert warned.stderr == ("WARNING: Unit hello.service in registry differs from local unit file hello.service. "
                             "Add --replace to override.\n")
    replaced = fleetpy("submit", "--replace", "hello.service", cwd=str(units))
    assert (replaced.exit_code, replaced.stdout) == (0, "Unit hello.service inactive\n")
    hello = cluster.unit("hello.service")
    assert hello is not None and "Hello, changed" in hello.unit_file.contents
    same = fleetpy("submit", "--replace", "hello.service", cwd=str(units))
    assert same.stdout == "Found same Unit(hello.service) in Registry, nothing to do\n"
    fleetpy("start", "--no-block", "hello.service", cwd=str(units))
    (units / "hello.service").write_text(HELLO)
    refused = fleetpy("submit", "--replace", "hello.service", cwd=str(units))
    assert refused.stdout == ("Warning: can not replace Unit(hello.service) in state 'launched', use the appropriate "
                              "command\n")
    restarted = fleetpy("start", "--replace", "--no-block", "hello.service", cwd=str(units))
    assert lines(restarted.stdout) == ["Unit hello.service inactive", "Triggered unit hello.service start"]
    hello = cluster.unit("hello.service")
    assert hello is not None and "Hello sleeper" in hello.unit_file.contents
    assert hello.target_state is JobState.LAUNCHED


def test_cat(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    (units / "messy.service").write_text("# comment\n[Unit]\nDescription = Messy  \n\n\n[Service]\n; x\n"
                                         "ExecStart=/bin/true\n")
    fleetpy("submit", "messy.service", cwd=str(units))
    result = fleetpy("cat", "messy")
    assert (result.exit_code, result.stdout) == (0, "[Unit]\nDescription=Messy\n\n[Service]\nExecStart=/bin/true\n")
    missing = fleetpy("cat", "missing.service")
    assert (missing.exit_code, missing.stdout, missing.stderr) == (1, "", "Unit missing.service not found\n")


def test_explain(fleetpy: Fleetpy, cluster: Registry, units: pathlib.Path) -> None:
    fleetpy("submit", "web@.service", "web@1.service", cwd=str(units))
    fleetpy("load", "--no-block", "web@1.service")
    result = fleetpy("explain", "--no-legend", "web@1")
    assert result.exit_code == 0, result.stderr
    rows = [line.split("\t") for line in lines(result.stdout)]
    by_machine = {row[0]: [cell for cell in row[1:] if cell] for row in rows}
    assert set(by_machine) == {f"{m.short_id}.../{m.public_ip}" for m in MACHINES}
    assert by_machine[f"{N1[:8]}.../127.0.0.11"][0] == "no"  # role=db
    assert [v[0] for k, v in by_machine.items() if not k.startswith(N1[:8])] == ["yes", "yes"]
    missing = fleetpy("explain", "missing.service")
    assert (missing.exit_code, missing.stderr) == (1, "Unit missing.service not found\n")
