"""``fleetpyd`` command line: version, usage, config errors, sd_notify."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fleetpy import __version__
from fleetpy.daemon.main import main, parse_args, sd_notify


@pytest.mark.parametrize("args", [["--version"], ["version"], ["-version"]])
def test_version(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 0
    assert capsys.readouterr().out == f"fleetpyd version {__version__}\n"


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param([], ("run", None), id="none"),
    pytest.param(["--config", "/x.conf"], ("run", "/x.conf"), id="config"),
    pytest.param(["--config=/x.conf"], ("run", "/x.conf"), id="config-equals"),
    pytest.param(["-config", "/x.conf"], ("run", "/x.conf"), id="go-style"),
    pytest.param(["--config"], ("usage", None), id="config-without-path"),
    pytest.param(["start"], ("usage", None), id="unknown-word"),
    pytest.param(["--verbose"], ("usage", None), id="unknown-flag"),
])
def test_arguments(args: list[str], expected: tuple[str, str | None]) -> None:
    assert parse_args(args) == expected


def test_any_other_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bogus"]) == 2
    assert "usage: fleetpyd" in capsys.readouterr().err


def test_bad_config_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEET_AGENT_TTL", "soon")
    assert main(["--config", str(tmp_path / "none.conf")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fleetpyd: cannot read config file") and err.count("\n") == 1
    conf = tmp_path / "fleet.conf"
    conf.write_text("agent_ttl=30s\n")
    assert main(["--config", str(conf)]) == 1
    assert "invalid agent_ttl 'soon' (from FLEET_AGENT_TTL)" in capsys.readouterr().err


def test_sd_notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sd_notify("READY=1") is True
        assert sock.recv(100) == b"READY=1"


def test_console_script_version() -> None:
    binary = Path(sys.executable).parent / "fleetpyd"
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=True).stdout
    assert out == f"fleetpyd version {__version__}\n"
