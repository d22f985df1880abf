"""Table-driven tests of the pure constraint checks shared by the agent and the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from fleetpy.model import constraints
from fleetpy.model.constraints import RefusalKind
from fleetpy.model.job import Requirements
from fleetpy.model.records import MachineState
from fleetpy.model.unit import UnitFile

MID = "1234abcd5678ef901234abcd5678ef90"


def req(name: str, **xfleet: str | list[str]) -> Requirements:
    """Requirements parsed from a real ``[X-Fleet]`` section (specifiers expanded with ``name``)."""
    lines = ["[Service]", "ExecStart=/bin/true", "[X-Fleet]"]
    for key, values in xfleet.items():
        for value in [values] if isinstance(values, str) else values:
            lines.append(f"{key}={value}")
    return Requirements.of(UnitFile.parse("\n".join(lines) + "\n"), name)


@dataclass
class View:
    machine: MachineState
    units: Mapping[str, Requirements] = field(default_factory=dict)

    @property
    def constrained(self) -> Mapping[str, Requirements]:
        return constraints.constrained(self.units)


def view(units: dict[str, Requirements] | None = None, *, mid: str = MID, **metadata: str) -> View:
    return View(MachineState(mid, metadata=metadata), units or {})


@pytest.mark.parametrize(
    ("metadata", "required", "ok"),
    [
        pytest.param({"role": "db"}, {"role": ("db",)}, True, id="one-key-match"),
        pytest.param({"role": "web"}, {"role": ("db",)}, False, id="one-key-wrong-value"),
        pytest.param({}, {"role": ("db",)}, False, id="machine-lacks-key"),
        pytest.param({"role": "cache"}, {"role": ("db", "cache")}, True, id="values-of-one-key-ORed"),
        pytest.param({"role": "db", "region": "eu"}, {"role": ("db",), "region": ("eu",)}, True, id="keys-ANDed"),
        pytest.param({"role": "db", "region": "us"}, {"role": ("db",), "region": ("eu",)}, False,
                     id="keys-ANDed-one-fails"),
        pytest.param({"role": "db"}, {}, True, id="no-requirement"),
        pytest.param({"role": "DB"}, {"role": ("db",)}, False, id="case-sensitive"),
    ],
)
def test_metadata_matches(metadata: dict[str, str], required: dict[str, tuple[str, ...]], ok: bool) -> None:
    assert constraints.metadata_matches(metadata, required) is ok
    assert (constraints.unmet_metadata(metadata, required) == {}) is ok


def test_metadata_from_unit_file_drops_malformed_values() -> None:
    r = req("a.service", MachineMetadata=["role=db", "bogus", "x=y=z", "role=cache"])
    assert r.metadata == {"role": ("db", "cache")}
    assert constraints.describe_metadata(r.metadata) == "role=db|cache"


@pytest.mark.parametrize(
    ("name", "conflicts", "others", "expected"),
    [
        pytest.param("a.service", ["b.service"], {"b.service": req("b.service")}, "b.service", id="exact-name"),
        pytest.param("a.service", ["web@*.service"], {"web@1.service": req("web@1.service")}, "web@1.service",
                     id="glob"),
        pytest.param("a.service", [], {"b.service": req("b.service", Conflicts="a.*")}, "b.service",
                     id="reverse-direction"),
        pytest.param("a.service", [], {"b.service": req("b.service", Conflicts="x.service")}, None,
                     id="reverse-no-match"),
        pytest.param("web@1.service", ["web@*.service"], {"web@1.service": req("web@1.service")}, None,
                     id="never-with-itself"),
        pytest.param("a.service", ["c.service b.service"], {"b.service": req("b.service")}, "b.service",
                     id="whitespace-separated-values"),
        pytest.param("a.service", ["*"], {"z.service": req("z.service"), "b.service": req("b.service")},
                     "b.service", id="first-sorted-reported"),
        pytest.param("a.service", ["B.service"], {"b.service": req("b.service")}, None, id="case-sensitive-glob"),
        pytest.param("a.service", ["b?service"], {"b.service": req("b.service")}, "b.service", id="question-mark"),
        pytest.param("a.service", ["[bc].service"], {"c.service": req("c.service")}, "c.service", id="char-class"),
    ],
)
def test_conflicts(name: str, conflicts: list[str], others: dict[str, Requirements], expected: str | None) -> None:
    own = req(name, Conflicts=conflicts).conflicts if conflicts else ()
    assert constraints.conflicting_unit(name, own, others) == expected
    assert constraints.has_conflict(name, own, others) is (expected is not None)


A = "a.service"


@pytest.mark.parametrize(
    ("name", "xfleet", "units", "kind", "detail"),
    [
        pytest.param(A, {"MachineID": MID}, {}, None, "", id="machine-id-full"),
        pytest.param(A, {"MachineID": MID[:8]}, {}, None, "", id="machine-id-short"),
        pytest.param(A, {"MachineID": MID[:7]}, {}, RefusalKind.MACHINE_ID, MID[:7],
                     id="machine-id-7-chars-is-not-short-id"),
        pytest.param(A, {"MachineID": "ffff0000"}, {}, RefusalKind.MACHINE_ID, "ffff0000", id="machine-id-other"),
        pytest.param(A, {"X-ConditionMachineID": MID}, {}, None, "", id="machine-id-legacy-key"),
        pytest.param("pin@1234abcd.service", {"MachineID": "%i"}, {}, None, "", id="machine-id-from-instance"),
        pytest.param("pin@ffff0000.service", {"MachineID": "%i"}, {}, RefusalKind.MACHINE_ID, "ffff0000",
                     id="machine-id-from-other-instance"),
        pytest.param(A, {"MachineMetadata": "role=db"}, {}, RefusalKind.METADATA, "role=db", id="metadata-missing"),
        pytest.param(A, {"MachineMetadata": "role=web"}, {}, None, "", id="metadata-ok"),
        pytest.param("metadata@web.service", {"MachineMetadata": "role=%i"}, {}, None, "",
                     id="metadata-specifier"),
        pytest.param(A, {"MachineOf": "b.service"}, {}, RefusalKind.PEER, "b.service", id="peer-absent"),
        pytest.param(A, {"MachineOf": "b.service"}, {"b.service": req("b.service")}, None, "", id="peer-here"),
        pytest.param(A, {"MachineOf": ["b.service", "c.service"]}, {"b.service": req("b.service")},
                     RefusalKind.PEER, "c.service", id="all-peers-needed"),
        pytest.param(A, {"MachineOf": "b.*"}, {"b.service": req("b.service")}, RefusalKind.PEER, "b.*",
                     id="peer-is-exact-not-glob"),
        pytest.param(A, {"Conflicts": "b.service"}, {"b.service": req("b.service")}, RefusalKind.CONFLICT,
                     "b.service", id="conflict"),
        pytest.param(A, {}, {"b.service": req("b.service", Conflicts="a.service")}, RefusalKind.CONFLICT,
                     "b.service", id="conflict-reverse"),
        pytest.param(A, {}, {"b.service": req("b.service", Replaces="a.service")}, RefusalKind.REPLACED,
                     "b.service", id="replaced-by-unit-here"),
        pytest.param(A, {"Replaces": "b.service"}, {"b.service": req("b.service", Replaces="a.service")}, None, "",
                     id="circular-replaces-ignored"),
        pytest.param(A, {"Replaces": "b.service"}, {"b.service": req("b.service")}, None, "",
                     id="replacer-is-able"),
        pytest.param(A, {"MachineID": "ffff0000", "MachineMetadata": "role=db"}, {}, RefusalKind.MACHINE_ID,
                     "ffff0000", id="machine-id-checked-before-metadata"),
        pytest.param(A, {"MachineMetadata": "role=db", "Conflicts": "b.service"}, {"b.service": req("b.service")},
                     RefusalKind.METADATA, "role=db", id="metadata-checked-before-conflicts"),
    ],
)
def test_first_refusal(name: str, xfleet: dict[str, str | list[str]], units: dict[str, Requirements],
                       kind: RefusalKind | None, detail: str) -> None:
    refusal = constraints.first_refusal(view(units, role="web"), name, req(name, **xfleet))
    if kind is None:
        assert refusal is None
    else:
        assert refusal == (kind, detail)


@pytest.mark.parametrize(
    ("candidate", "units", "ok", "reason"),
    [
        pytest.param(req("a.service"), {}, True, "", id="plain"),
        pytest.param(req("a.service", Replaces="b.*"), {"b.service": req("b.service"), "c.service": req("c")},
                     True, "replaces b.service", id="replaces-reason"),
        pytest.param(req("a.service", MachineMetadata="role=db"), {}, False, "lacks metadata role=db",
                     id="metadata-reason"),
        pytest.param(req("a.service", Conflicts="b.service"), {"b.service": req("b.service")}, False,
                     "conflicts with b.service", id="conflict-reason"),
        pytest.param(req("a.service", MachineOf="m.service"), {}, False, "peer m.service is not scheduled here",
                     id="peer-reason"),
        pytest.param(req("a.service"), {"k.service": req("k.service", Replaces="a.service")}, False,
                     "k.service replaces it here", id="replaced-reason"),
        pytest.param(req("a.service", MachineID="ffff0000"), {}, False, "not MachineID ffff0000",
                     id="machine-id-reason"),
    ],
)
def test_able_to_run(candidate: Requirements, units: dict[str, Requirements], ok: bool, reason: str) -> None:
    verdict = constraints.able_to_run(view(units), "a.service", candidate)
    got_ok, got_reason = verdict[:2]
    assert (got_ok, got_reason) == (ok, reason)
    assert (verdict.refusal is None) is ok


@pytest.mark.parametrize(
    ("replaces", "others", "expected"),
    [
        pytest.param(["b.service"], {"b.service": req("b.service")}, ["b.service"], id="one"),
        pytest.param(["b@*.service"], {"b@1.service": req("b@1.service"), "b@2.service": req("b@2.service")},
                     ["b@1.service", "b@2.service"], id="glob-several"),
        pytest.param(["b.service"], {"b.service": req("b.service", Replaces="a.service")}, [], id="circular"),
        pytest.param(["b.service"], {"b.service": req("b.service", Replaces="a.*")}, [], id="circular-glob"),
        pytest.param(["a.service"], {"a.service": req("a.service")}, [], id="never-itself"),
    ],
)
def test_replaced_units(replaces: list[str], others: dict[str, Requirements], expected: list[str]) -> None:
    assert constraints.replaced_units("a.service", req("a.service", Replaces=replaces), others) == expected


def test_refusal_unpacks_like_a_pair() -> None:
    kind, detail = constraints.Refusal(RefusalKind.PEER, "x.service")
    assert (kind, detail) == ("peer", "x.service")
