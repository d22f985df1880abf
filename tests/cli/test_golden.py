"""List commands, byte for byte: against fleetctl 1.0's recorded output for the same cluster, and against
fleetpy's own golden files for every field (regenerate with FLEETPY_UPDATE_GOLDEN=1 and review the diff)."""

from __future__ import annotations

import os
import pathlib

import pytest

from fleetpy.registry.registry import Registry
from tests.cli.cluster import Fleetpy, doc_cluster

GOLDEN = pathlib.Path(__file__).parent.parent / "golden"
FLEET = GOLDEN / "fleetctl-1.0"
OURS = GOLDEN / "fleetpy"

# (recorded file, cluster variant, command line)
RECORDED = [
    ("list-machines", {}, ["list-machines"]),
    ("list-machines-full", {}, ["list-machines", "--full"]),
    ("list-machines-no-legend", {}, ["list-machines", "--no-legend"]),
    ("list-unit-files", {}, ["list-unit-files"]),
    ("list-unit-files-fields-unit-global-hash-desc-dstate-state-target", {"chatty": True},
     ["list-unit-files", "--fields", "unit,global,hash,desc,dstate,state,target"]),
    ("list-units", {}, ["list-units"]),
    ("list-units-full", {}, ["list-units", "--full"]),
    ("list-units-no-legend-fields-unit-machine", {}, ["list-units", "--no-legend", "--fields", "unit,machine"]),
    ("list-units-fields-unit-active-sub-load", {"chatty": True, "sleepers": "loaded"},
     ["list-units", "--fields", "unit,active,sub,load"]),
    ("list-unit-files-fields-unit-dstate-state-target", {"chatty": True, "sleepers": "inactive"},
     ["list-unit-files", "--fields", "unit,dstate,state,target"]),
    ("list-unit-files-fields-unit-dstate-state-target--2", {"chatty": True, "sleepers": "loaded"},
     ["list-unit-files", "--fields", "unit,dstate,state,target"]),
    ("list-unit-files-fields-unit-dstate-state-target--3", {"chatty": True, "sleepers": "inactive"},
     ["list-unit-files", "--fields", "unit,dstate,state,target"]),
    ("list-unit-files-fields-unit-dstate-state-target--4", {"chatty": True},
     ["list-unit-files", "--fields", "unit,dstate,state,target"]),
]

ALL_UNITS = "unit,machine,load,active,sub,hash"
ALL_UNIT_FILES = "unit,hash,dstate,state,target,tmachine,global,desc,reason"
OWN = [
    ("list-units-all-fields", ["list-units", "--fields", ALL_UNITS]),
    ("list-units-all-fields-full", ["list-units", "--full", "--fields", ALL_UNITS]),
    ("list-units-hash-unit-no-legend", ["list-units", "--no-legend", "--fields", "hash,unit"]),
    ("list-unit-files-default", ["list-unit-files"]),
    ("list-unit-files-all-fields", ["list-unit-files", "--fields", ALL_UNIT_FILES]),
    ("list-unit-files-all-fields-full", ["list-unit-files", "-l", "--fields", ALL_UNIT_FILES]),
    ("list-unit-files-reason", ["list-unit-files", "--fields", "unit,reason"]),
    ("list-machines-fields-ip-machine", ["list-machines", "--fields", "ip,machine", "-l"]),
    ("list-unit-files-desc-one-column", ["list-unit-files", "--no-legend", "--fields", "desc"]),
]


@pytest.mark.parametrize(("golden", "variant", "args"), RECORDED, ids=[r[0] for r in RECORDED])
def test_same_bytes_as_fleetctl(fleetpy: Fleetpy, etcd_registry: Registry, golden: str, variant: dict[str, object],
                                args: list[str]) -> None:
    doc_cluster(etcd_registry, **variant)  # type: ignore[arg-type]
    result = fleetpy(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (FLEET / f"{golden}.txt").read_text()


@pytest.mark.parametrize(("golden", "args"), OWN, ids=[o[0] for o in OWN])
def test_fleetpy_golden(fleetpy: Fleetpy, etcd_registry: Registry, golden: str, args: list[str]) -> None:
    doc_cluster(etcd_registry, chatty=True, sleepers="loaded")
    result = fleetpy(*args)
    assert result.exit_code == 0, result.stderr
    path = OURS / f"{golden}.txt"
    if os.environ.get("FLEETPY_UPDATE_GOLDEN"):
        path.write_text(result.stdout)
    assert result.stdout == path.read_text()


def test_list_units_golden_as_subprocess(fleetpy: Fleetpy, etcd_registry: Registry) -> None:
    doc_cluster(etcd_registry)
    result = fleetpy.sh("list-units")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (FLEET / "list-units.txt").read_text()
