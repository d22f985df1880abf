"""The fleetpy entry point: help, version, prefixes, usage errors, global options and FLEETCTL_* variables,
--debug, unreachable etcd; in process and as the installed script."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetpy import __version__
from fleetpy.cli.context import CliEnv
from fleetpy.cli.main import cli
from fleetpy.client.config import ClientConfig, Driver
from fleetpy.errors import RegistryUnavailable
from fleetpy.registry.registry import Registry
from fleetpy.testing.etcd_server import free_port
from tests.cli.cluster import Fleetpy, Result, add_machines


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


def test_no_args_prints_help() -> None:
    result = run()
    assert result.exit_code == 0 and result.stdout.startswith("Usage: fleetpy")
    for name in ("list-units", "list-unit-files", "list-machines", "submit", "restart", "verify", "explain", "lab"):
        assert name in result.stdout


@pytest.mark.parametrize("args", [["--version"], ["-v"], ["version"], ["vers"]])
def test_version(args: list[str]) -> None:
    assert run(*args) == Result(0, f"fleetpy version {__version__}\n", "")


def test_help_command() -> None:
    assert run("help").stdout == run("--help").stdout
    sub = run("help", "list-units")
    assert sub.exit_code == 0 and "Usage: fleetpy list-units" in sub.stdout and "--fields" in sub.stdout
    assert "-l, --l, --full" in sub.stdout or "--full" in sub.stdout


def test_unknown_and_ambiguous_commands() -> None:
    unknown = run("frobnicate")
    assert unknown == Result(1, "", 'Error: unknown command "frobnicate" for "fleetpy"\n'
                                    "Run 'fleetpy --help' for usage.\n")
    ambiguous = run("list")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr.splitlines()[0] == ('Error: ambiguous command "list" for "fleetpy": could be '
                                                "list-machines, list-unit-files, list-units")
    bad_option = run("list-units", "--bogus")
    assert bad_option.exit_code == 1 and "Traceback" not in bad_option.stderr
    assert bad_option.stderr.endswith("Run 'fleetpy list-units --help' for usage.\n")


def test_prefix_matching(fleetpy: Fleetpy, etcd_registry: Registry) -> None:
    add_machines(etcd_registry)
    assert fleetpy("list-m").stdout == fleetpy("list-machines").stdout
    assert fleetpy("list-unit-f").stdout == "UNIT\tHASH\tDSTATE\tSTATE\tTARGET\n"


def test_env_vars_and_command_line_precedence(fleetpy: Fleetpy, etcd_registry: Registry) -> None:
    add_machines(etcd_registry)
    env = fleetpy.env()
    from_env = run("list-machines", "--no-legend", env=env)
    assert from_env.exit_code == 0 and len(from_env.stdout.splitlines()) == 3
    if fleetpy.driver == "etcd":  # the key prefix is the etcd driver's (the api driver's server has its own)
        overridden = run("--etcd-key-prefix", "/elsewhere/", "list-machines", "--no-legend", env=env)
        assert (overridden.exit_code, overridden.stdout) == (0, "")
    else:
        overridden = run("--endpoint", "unix:///nonexistent/fleet.sock", "list-machines", env=env)
        assert overridden.exit_code == 1 and "/nonexistent/fleet.sock" in overridden.stderr
    bad_env = run("list-machines", env={**env, "FLEETCTL_ENDPOINT": "http://127.0.0.1:1"})
    assert bad_env.exit_code == 1
    cli_wins = run("--endpoint", fleetpy.endpoint, "list-machines", env={**env, "FLEETCTL_ENDPOINT": "http://x:1"})
    assert cli_wins.exit_code == 0


def test_global_options_after_the_command(fleetpy: Fleetpy, etcd_registry: Registry) -> None:
    add_machines(etcd_registry)
    result = run("list-machines", "--no-legend", *fleetpy.global_args())
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 3


def test_debug_logs_registry_requests(fleetpy: Fleetpy, etcd_registry: Registry) -> None:
    # The api driver's server runs in this process and logs its etcd requests too: each driver's own line is checked.
    line = (f"DEBUG fleetpy.registry: etcd GET {fleetpy.prefix}machines recursive via" if fleetpy.driver == "etcd"
            else "DEBUG fleetpy.client: HTTP GET http://domain-sock/fleet/v1/machines?alt=json")
    result = fleetpy("--debug", "list-machines")
    assert result.exit_code == 0
    assert line in result.stderr
    from_env = fleetpy("list-machines", env={"FLEETCTL_DEBUG": "true"})
    assert line in from_env.stderr
    quiet = fleetpy("list-machines")
    assert quiet.stderr == ""


def test_pflag_bool_syntax() -> None:
    assert run("--strict-host-key-checking=false", "version").exit_code == 0
    assert run("--debug=false", "version").stdout == f"fleetpy version {__version__}\n"
    bad = run("--debug=maybe", "version")
    assert bad.exit_code == 1 and 'invalid argument "maybe" for "--debug" flag' in bad.stderr


def test_unsupported_driver_and_tunnel() -> None:
    no_socket = run("--driver", "api", "--endpoint", "unix:///nonexistent/fleet.sock", "list-units")
    assert no_socket.exit_code == 1 and no_socket.stderr.count("\n") == 1 and "Traceback" not in no_socket.stderr
    assert run("--driver", "carrier-pigeon", "list-units").stderr == (
        'Error: unknown driver "carrier-pigeon": use "etcd" or "api"\n')
    port = free_port()
    started = time.monotonic()
    tunnel = run("--tunnel", f"127.0.0.1:{port}", "--ssh-timeout", "2", "list-units")
    assert time.monotonic() - started < 5
    assert tunnel.exit_code == 1 and tunnel.stdout == "" and tunnel.stderr.count("\n") == 1
    assert tunnel.stderr.startswith("Error: ") and f"127.0.0.1:{port}" in tunnel.stderr


def test_bad_global_values() -> None:
    assert run("--driver", "etcd", "--endpoint", "unix:///var/run/fleet.sock", "list-units").stderr == (
        "Error: invalid etcd endpoint 'unix:///var/run/fleet.sock': expected http(s)://host:port\n")
    assert run("--request-timeout", "0", "list-units").stderr == "Error: --request-timeout must be positive, got 0.0\n"
    assert run("--key-file", "k.pem", "list-units").stderr == "Error: --key-file needs --cert-file\n"


def test_unreachable_etcd_is_one_line_within_the_timeout() -> None:
    port = free_port()
    started = time.monotonic()
    result = run("--driver", "etcd", "--endpoint", f"http://127.0.0.1:{port}", "--request-timeout", "1", "list-units")
    assert time.monotonic() - started < 3
    assert result == Result(1, "", "Error: etcd cluster is unavailable or misconfigured: "
                                   f"http://127.0.0.1:{port}: connection refused\n")


@pytest.mark.parametrize("driver", ["etcd", "api"])
def test_unreachable_cluster_as_subprocess(driver: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}" if driver == "etcd" else "unix:///nonexistent/fleet.sock"
    script = Fleetpy(endpoint, "/x/", driver=driver)
    message = ("etcd cluster is unavailable or misconfigured" if driver == "etcd"
               else "Error: fleet API at unix:///nonexistent/fleet.sock: ")
    for args in (["list-units"], ["start", "--no-block", "x.service"], ["cat", "x.service"]):
        result = script.sh(*args)
        assert result.exit_code == 1, args
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert message in result.stderr


def test_subprocess_version_and_no_args() -> None:
    script = Fleetpy("http://127.0.0.1:1", "/x/")
    assert script.sh("version").stdout == f"fleetpy version {__version__}\n"
    no_args = script.sh()
    assert no_args.exit_code == 0 and "Usage: fleetpy" in no_args.stdout
    unknown = script.sh("nope")
    assert unknown.exit_code == 1 and unknown.stdout == "" and "Traceback" not in unknown.stderr


def test_list_flags(fleetpy: Fleetpy, etcd_registry: Registry) -> None:
    add_machines(etcd_registry)
    assert fleetpy("list-units", "-l").exit_code == 0  # fleetctl 1.0 rejected -l
    assert fleetpy("list-units", "--fields", "desc") == Result(1, "", 'Invalid key in output format: "desc"\n')
    assert fleetpy("list-unit-files", "--fields", "") == Result(1, "", "Must define output format\n")
    tmachine = fleetpy("list-unit-files", "--fields", "unit,tmachine")
    assert tmachine == Result(0, "UNIT\tTMACHINE\n",
                              'WARNING: The "tmachine" field is deprecated. Use "target" instead\n')
    assert fleetpy("list-machines", "--fields", "ip", "--full=false", "--no-legend").stdout == (
        "127.0.0.12\n127.0.0.13\n127.0.0.11\n")  # sorted by machine ID


def test_debug_reraises_for_the_traceback() -> None:
    port = free_port()
    result = CliRunner().invoke(cli, ["--debug", "--endpoint", f"http://127.0.0.1:{port}", "list-units"])
    assert isinstance(result.exception, RegistryUnavailable)


def test_every_global_option_reads_its_fleetctl_variable() -> None:
    env_vars = {
        "FLEETCTL_ENDPOINT": "http://e:1", "FLEETCTL_DRIVER": "ETCD", "FLEETCTL_ETCD_KEY_PREFIX": "/p/",
        "FLEETCTL_REQUEST_TIMEOUT": "7.5", "FLEETCTL_DEBUG": "1", "FLEETCTL_TUNNEL": "bastion:2222",
        "FLEETCTL_SSH_USERNAME": "admin", "FLEETCTL_SSH_TIMEOUT": "4", "FLEETCTL_KNOWN_HOSTS_FILE": "/kh",
        "FLEETCTL_STRICT_HOST_KEY_CHECKING": "false", "FLEETCTL_CA_FILE": "/ca", "FLEETCTL_CERT_FILE": "/cert",
        "FLEETCTL_KEY_FILE": "/key",
    }
    state = CliEnv()
    assert CliRunner().invoke(cli, ["version"], obj=state, env=env_vars).exit_code == 0
    assert state.config == ClientConfig(
        endpoint="http://e:1", driver=Driver.ETCD, etcd_key_prefix="/p/", request_timeout=7.5, debug=True,
        tunnel="bastion:2222", ssh_username="admin", ssh_timeout=4.0, known_hosts_file="/kh",
        strict_host_key_checking=False, ca_file="/ca", cert_file="/cert", key_file="/key")
    overridden = CliEnv()
    args = ["--ssh-username", "me", "--strict-host-key-checking", "--etcd-cafile", "/other", "version"]
    assert CliRunner().invoke(cli, args, obj=overridden, env=env_vars).exit_code == 0
    assert (overridden.config.ssh_username, overridden.config.strict_host_key_checking,
            overridden.config.ca_file) == ("me", True, "/other")


def test_lifecycle_as_subprocess(fleetpy: Fleetpy, etcd_registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "hello.service").write_text("[Service]\nExecStart=/bin/sleep 100\n")
    started = fleetpy.sh("start", "--no-block", "hello", cwd=str(tmp_path))
    assert started.exit_code == 0
    assert started.stdout == "Unit hello.service inactive\nTriggered unit hello.service start\n"
    listed = fleetpy.sh("list-unit-files", "--no-legend")
    assert listed.stdout == "hello.service\t1c6fb6f\tlaunched\tinactive\t-\n"
    assert fleetpy.sh("cat", "hello.service").stdout == "[Service]\nExecStart=/bin/sleep 100\n"
    unloaded = fleetpy.sh("unload", "--no-block", "hello.service")
    assert (unloaded.exit_code, unloaded.stdout) == (0, "Triggered unit hello.service unload\n")
    destroyed = fleetpy.sh("destroy", "hello.service")
    assert (destroyed.exit_code, destroyed.stdout) == (0, "Destroyed hello.service\n")
    assert etcd_registry.units() == []
