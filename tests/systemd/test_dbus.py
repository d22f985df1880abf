"""DBusUnitManager against a real systemd (PID 1 of a lab node): the contract scenario, [Install] enablement,
files and links on disk, and errors that name the call and the unit."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetpy.lab import Lab
from tests.systemd.contract import EXPECTED

pytestmark = pytest.mark.lab
ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Any]]:
    """A one-node lab (no agent); ``run(code)`` runs Python in the node and returns what it printed as JSON."""
    from tests.plugins.lab import require_lab, unique_lab_name

    require_lab()
    lab = Lab(unique_lab_name(), state_dir=tmp_path_factory.mktemp("dbus"))
    lab.up(nodes=1, etcd_members=1, agents=False)

    def run(code: str) -> Any:
        proc = lab.exec("node1", [sys.executable, "-c", code], env={"PYTHONPATH": ROOT}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    try:
        yield run
    finally:
        lab.down()


def test_contract_scenario(node: Callable[[str], Any]) -> None:
    result = node(
        "import json; from fleetpy.systemd.dbus import DBusUnitManager; from tests.systemd.contract import scenario;"
        "print(json.dumps(scenario(DBusUnitManager('/run/fleet/units'))))")
    assert result == json.loads(json.dumps(EXPECTED))


def test_files_links_and_install_enablement(node: Callable[[str], Any]) -> None:
    result = node("""
import json, os, time
from fleetpy.systemd.dbus import DBusUnitManager
from fleetpy.model.unit import UnitFile
m = DBusUnitManager('/run/fleet/units')
hello = UnitFile.parse('[Service]\\nExecStart=/bin/sleep 1000\\n')
side = UnitFile.parse('[Unit]\\nBindsTo=hello.service\\n[Service]\\nExecStart=/bin/sleep 1000\\n'
                      '[Install]\\nWantedBy=hello.service\\n')
m.load('hello.service', hello)
m.load('side.service', side)
m.reload()
out = {'mode': oct(os.stat('/run/fleet/units/side.service').st_mode & 0o777),
       'dir': oct(os.stat('/run/fleet/units').st_mode & 0o777),
       'content': open('/run/fleet/units/side.service').read() == side.contents,
       'link': os.readlink('/run/systemd/system/side.service'),
       'wants': os.path.islink('/run/systemd/system/hello.service.wants/side.service')}
m.start('hello.service')
for _ in range(100):
    s = m.states(['hello.service', 'side.service'])
    if all(x.active == 'active' for x in s.values()):
        break
    time.sleep(0.02)
out['both_active'] = [s['hello.service'].active, s['side.service'].active]
m.unload('side.service'); m.unload('hello.service'); m.reload()
out['gone'] = [os.path.exists(p) for p in ('/run/fleet/units/side.service', '/run/systemd/system/side.service',
               '/run/systemd/system/hello.service.wants/side.service')]
out['after'] = [m.states(['side.service'])['side.service'].load]
print(json.dumps(out))
""")
    assert result == {"mode": "0o644", "dir": "0o755", "content": True, "link": "/run/fleet/units/side.service",
                      "wants": True, "both_active": ["active", "active"], "gone": [False, False, False],
                      "after": ["not-found"]}


def test_a_restarted_driver_reads_hashes_back_from_the_directory(node: Callable[[str], Any]) -> None:
    result = node("""
import json, os
from fleetpy.systemd.dbus import DBusUnitManager
from fleetpy.model.unit import UnitFile
u = UnitFile.parse('[Service]\\nExecStart=/bin/sleep 1000\\n')
DBusUnitManager('/run/fleet/units').load('again.service', u)
open('/run/fleet/units/not a unit', 'w').close()
m = DBusUnitManager('/run/fleet/units')
print(json.dumps([m.units().get('again.service') == u.hash, 'not a unit' in m.units()]))
m.unload('again.service'); os.unlink('/run/fleet/units/not a unit'); m.reload()
""")
    assert result == [True, False]
