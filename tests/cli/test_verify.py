"""``fleetpy verify``: unit files checked without etcd (the endpoint below is closed on purpose)."""

from __future__ import annotations

import pathlib

from tests.cli.cluster import Fleetpy, unit_text

OFFLINE = Fleetpy("http://127.0.0.1:1", "/nowhere/")


def test_verify_prints_hashes_and_warnings(tmp_path: pathlib.Path) -> None:
    (tmp_path / "hello.service").write_text("[Service]\nExecStart=/bin/sleep 100\n")
    (tmp_path / "odd.service").write_text(unit_text("Odd", "Bogus=1\nMachineMetadata=novalue"))
    result = OFFLINE("verify", "hello.service", "odd", cwd=str(tmp_path))
    assert result.exit_code == 0
    odd_hash = result.stdout.splitlines()[1].split(": ")[1]
    assert result.stdout == f"hello.service: 1c6fb6f3684bafb0c173d8b8b957ceff031180c1\nodd.service: {odd_hash}\n"
    assert result.stderr == (
        'odd.service: warning: unknown [X-Fleet] option "Bogus" (ignored by the scheduler)\n'
        'odd.service: warning: MachineMetadata value "novalue" is not key=value and would be silently ignored\n')


def test_verify_reports_every_bad_file_and_exits_1(tmp_path: pathlib.Path) -> None:
    (tmp_path / "good.service").write_text(unit_text("Good"))
    (tmp_path / "bad.service").write_text("[Unit] x\n")
    (tmp_path / "combo.service").write_text("[X-Fleet]\nGlobal=true\nReplaces=x.service\n")
    result = OFFLINE.sh("verify", "bad.service", "good.service", "combo.service", "missing.service",
                        cwd=str(tmp_path))
    assert result.exit_code == 1
    assert result.stdout.startswith("good.service: ")
    assert result.stderr.splitlines() == [
        "bad.service: line 1: garbage after section header: '[Unit] x'",
        "combo.service: [X-Fleet]: Global cannot be used with Replaces",
        "missing.service: cannot read: No such file or directory",
        "Error: 3 of 4 unit files invalid",
    ]


def test_verify_needs_a_file() -> None:
    result = OFFLINE("verify")
    assert result.exit_code == 1 and "Missing argument" in result.stderr
