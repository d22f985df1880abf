"""Malformed input is refused with one line naming the file and the reason, exit 1, and nothing written to etcd;
and what fleetpy does write is fleet's exact JSON (fleet-reference 3). The raw key checks run with both drivers: with
``api`` they hold the API server, which writes the same keys on the CLI's behalf, to fleet's layout."""

from __future__ import annotations

import json
import pathlib

import pytest

from fleetpy.model.unit import UnitFile
from fleetpy.registry.etcd import EtcdStore
from tests.cli.cluster import Fleetpy, unit_text

GOOD = unit_text("Good")
BAD_FILES = [
    ("section.service", "[Unit] trailing\nDescription=x\n",
     "Error creating units: section.service: line 1: garbage after section header: '[Unit] trailing'"),
    ("unclosed.service", "[Unit\nDescription=x\n",
     "Error creating units: unclosed.service: line 1: section header not closed: '[Unit'"),
    ("long.service", "[Service]\nExecStart=/bin/echo " + "x" * 2100 + "\n",
     "Error creating units: long.service: line 2: line too long (max 2048 bytes)"),
    ("noequals.service", "[Unit]\nnonsense upon stilts\n",
     "Error creating units: noequals.service: line 2: expected Name=Value, got 'nonsense upon stilts'"),
    ("both.service", "[X-Fleet]\nMachineID=abc\nGlobal=true\n",
     "Error creating units: both.service: [X-Fleet]: MachineID cannot be used with Global"),
    ("peer.service", "[X-Fleet]\nMachineOf=db.service\nConflicts=db*.service\n",
     'Error creating units: peer.service: [X-Fleet]: unresolvable requirements: peer "db.service" matches '
     'conflict "db*.service"'),
    ("bad name.service", GOOD,
     'Error creating units: bad name.service: invalid unit name "bad name.service": invalid character \' \' in '
     "unit name"),
    ("foo@1.mount", GOOD,
     'Error creating units: foo@1.mount: invalid unit name "foo@1.mount": invalid unit type for template: "mount"'),
]


def written(store: EtcdStore, prefix: str) -> list[str]:
    return [node.key for node in store.list(prefix.rstrip("/")).nodes]


@pytest.mark.parametrize(("filename", "text", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_unit_file_refused_before_any_write(fleetpy: Fleetpy, etcd_store: EtcdStore, tmp_path: pathlib.Path,
                                                filename: str, text: str, message: str) -> None:
    (tmp_path / "good.service").write_text(GOOD)
    (tmp_path / filename).write_text(text)
    for verb in ("submit", "load", "start"):
        result = fleetpy(verb, "--no-block", "good.service", filename, cwd=str(tmp_path)) if verb != "submit" else \
            fleetpy(verb, "good.service", filename, cwd=str(tmp_path))
        assert (result.exit_code, result.stdout, result.stderr) == (1, "", message + "\n"), verb
    assert written(etcd_store, fleetpy.prefix) == []


def test_bad_file_as_subprocess(fleetpy: Fleetpy, etcd_store: EtcdStore, tmp_path: pathlib.Path) -> None:
    (tmp_path / "good.service").write_text(GOOD)
    (tmp_path / "both.service").write_text("[X-Fleet]\nMachineID=abc\nGlobal=true\n")
    result = fleetpy.sh("start", "good.service", "both.service", cwd=str(tmp_path))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "Error creating units: both.service: [X-Fleet]: MachineID cannot be used with Global\n"
    assert written(etcd_store, fleetpy.prefix) == []


def test_unreadable_inputs(fleetpy: Fleetpy, etcd_store: EtcdStore, tmp_path: pathlib.Path) -> None:
    (tmp_path / "dir.service").mkdir()
    (tmp_path / "latin1.service").write_bytes(b"[Unit]\nDescription=caf\xe9\n")
    directory = fleetpy("submit", "dir.service", cwd=str(tmp_path))
    assert directory.exit_code == 1 and directory.stderr.startswith("Error creating units: dir.service: cannot read")
    latin1 = fleetpy("submit", "latin1.service", cwd=str(tmp_path))
    assert latin1.stderr == "Error creating units: latin1.service: not valid UTF-8 (byte 22)\n"
    assert written(etcd_store, fleetpy.prefix) == []


def test_paths_never_become_names_with_slashes(fleetpy: Fleetpy, etcd_store: EtcdStore,
                                               tmp_path: pathlib.Path) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "up.service").write_text(GOOD)
    result = fleetpy("submit", "../up.service", "inner/../up", cwd=str(inner))
    assert (result.exit_code, result.stdout) == (0, "Unit up.service inactive\n")
    keys = written(etcd_store, fleetpy.prefix)
    assert f"{fleetpy.prefix}job/up.service/object" in keys
    assert all(key.count("/") == fleetpy.prefix.count("/") + 2 for key in keys if "/job/" in key)
    weird = fleetpy("cat", "a/../../etc/passwd")
    assert (weird.exit_code, weird.stderr) == (1, "Unit passwd.service not found\n")
    odd = fleetpy("cat", "what?.service")  # not a valid name: never sent to etcd as a key
    assert (odd.exit_code, odd.stderr) == (1, "Unit what?.service not found\n")


def test_raw_etcd_values_are_fleets_json(fleetpy: Fleetpy, etcd_store: EtcdStore, tmp_path: pathlib.Path) -> None:
    text = unit_text("Hello <fleet> & \"friends\"", "MachineMetadata=role=web")
    (tmp_path / "hello.service").write_text("# a comment fleet drops\n" + text)
    assert fleetpy("start", "--no-block", "hello.service", cwd=str(tmp_path)).exit_code == 0
    unit_file = UnitFile.parse(text)
    p = fleetpy.prefix

    def raw(key: str) -> str:
        node = etcd_store.get(p + key)
        assert node is not None and node.value is not None, key
        return node.value

    hash_ints = ",".join(str(b) for b in bytes.fromhex(unit_file.hash))
    assert raw("job/hello.service/object") == '{"Name":"hello.service","UnitHash":[' + hash_ints + "]}"
    assert raw("job/hello.service/target-state") == "launched"
    body = raw(f"unit/{unit_file.hash}")
    assert body == ('{"Raw":"[Unit]\\nDescription=Hello \\u003cfleet\\u003e \\u0026 \\"friends\\"\\n\\n'
                    '[Service]\\nExecStart=/bin/sleep infinity\\n\\n[X-Fleet]\\nMachineMetadata=role=web\\n"}')
    assert json.loads(body)["Raw"] == unit_file.contents
    assert etcd_store.get(p + "job/hello.service/target") is None  # the engine's key, never the client's
