"""fleetpyd configuration: fleet.conf parsing, FLEET_* overrides, Go durations and booleans, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetpy.daemon.config import Config, load, parse_bool, parse_duration, parse_metadata, parse_servers
from fleetpy.errors import ConfigError


@pytest.mark.parametrize(("text", "seconds"), [
    pytest.param("30s", 30.0, id="seconds"),
    pytest.param("1m30s", 90.0, id="compound"),
    pytest.param("500ms", 0.5, id="millis"),
    pytest.param("1.5h", 5400.0, id="fraction"),
    pytest.param("0", 0.0, id="bare-zero"),
    pytest.param("2m", 120.0, id="minutes"),
    pytest.param(" 3s ", 3.0, id="spaces"),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30", "s", "", "3x", "1m 30s", "abc"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "value"), [("true", True), ("1", True), ("T", True), ("False", False),
                                             ("0", False), ("f", False)])
def test_bools(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["yes", "on", "", "2"])
def test_bad_bools(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bool(text)


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("region=us,role=web", {"region": "us", "role": "web"}, id="pairs"),
    pytest.param('"region=us, role=web"', {"region": "us", "role": "web"}, id="quoted-spaces"),
    pytest.param("a=1,a=2", {"a": "2"}, id="last-wins"),
    pytest.param("", {}, id="empty"),
    pytest.param("a=,b=x=y", {"a": "", "b": "x=y"}, id="empty-and-equals"),
])
def test_metadata(text: str, expected: dict[str, str]) -> None:
    assert parse_metadata(text) == expected


def test_servers_accept_fleets_list_forms() -> None:
    assert parse_servers('["http://a:2379","http://b:2379"]') == ("http://a:2379", "http://b:2379")
    assert parse_servers("http://a:2379, https://b:2379") == ("http://a:2379", "https://b:2379")
    with pytest.raises(ValueError):
        parse_servers("a:2379")


def test_defaults_without_file_or_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("fleetpy.daemon.config.DEFAULT_CONFIG_FILE", str(tmp_path / "absent.conf"))
    config, warnings = load(None, {})
    assert config == Config(source="defaults")
    assert config.etcd_servers == ("http://127.0.0.1:2379", "http://127.0.0.1:4001")
    assert config.etcd_key_prefix == "/_coreos.com/fleet/"
    assert config.agent_ttl == 30.0 and config.ttl_seconds == 30
    assert config.units_directory == "/run/fleet/units"
    assert not config.disable_engine and not config.shutdown_keep_units
    assert warnings == []


def test_file_then_env_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "fleet.conf"
    conf.write_text("# fleet.conf\netcd_servers=http://10.0.0.1:2379\nmetadata=\"region=eu,disk=ssd\"\n"
                    "agent_ttl=10s\npublic_ip=10.0.0.5\n; a comment\nverbosity=1\nshutdown_keep_units=true\n")
    config, _ = load(str(conf), {"FLEET_AGENT_TTL": "5s", "FLEET_DISABLE_ENGINE": "true"})
    assert config.etcd_servers == ("http://10.0.0.1:2379",)
    assert dict(config.metadata) == {"region": "eu", "disk": "ssd"}
    assert config.agent_ttl == 5.0 and config.disable_engine and config.shutdown_keep_units
    assert config.public_ip == "10.0.0.5" and config.verbosity == 1
    assert str(conf) in config.source and "FLEET_AGENT_TTL" in config.source


def test_deprecated_and_unknown_options_warn(tmp_path: Path) -> None:
    conf = tmp_path / "fleet.conf"
    conf.write_text("verify_units=true\nbogus=1\ntoken_limit=50\n")
    _, warnings = load(str(conf), {})
    assert any("verify_units" in w and "deprecated" in w for w in warnings)
    assert any("bogus" in w for w in warnings)
    assert not any("token_limit" in w for w in warnings)


@pytest.mark.parametrize(("env", "fragment"), [
    pytest.param({"FLEET_AGENT_TTL": "30"}, "invalid agent_ttl", id="ttl-no-unit"),
    pytest.param({"FLEET_AGENT_TTL": "0s"}, "greater than 0", id="ttl-zero"),
    pytest.param({"FLEET_DISABLE_ENGINE": "maybe"}, "invalid disable_engine", id="bool"),
    pytest.param({"FLEET_ETCD_REQUEST_TIMEOUT": "fast"}, "invalid etcd_request_timeout", id="float"),
    pytest.param({"FLEET_METADATA": "region"}, "invalid metadata", id="metadata"),
    pytest.param({"FLEET_PUBLIC_IP": "10.0.0"}, "invalid public_ip", id="ip"),
    pytest.param({"FLEET_ETCD_SERVERS": "localhost"}, "invalid etcd_servers", id="servers"),
    pytest.param({"FLEET_VERBOSITY": "high"}, "invalid verbosity", id="int"),
])
def test_bad_values_are_one_line_errors_naming_the_source(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(None, env)
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert next(iter(env)) in message


def test_bad_file_lines_and_missing_file(tmp_path: Path) -> None:
    conf = tmp_path / "fleet.conf"
    conf.write_text("[section]\n")
    with pytest.raises(ConfigError, match=r"fleet\.conf:1"):
        load(str(conf), {})
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(str(tmp_path / "missing.conf"), {})


def test_config_is_frozen() -> None:
    config, _ = load(None, {"FLEET_METADATA": "a=1"})
    with pytest.raises(AttributeError):
        config.agent_ttl = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.metadata["b"] = "2"  # type: ignore[index]
