"""FakeUnitManager: the shared contract scenario, plus its test controls."""

from __future__ import annotations

import pytest

from fleetpy.errors import SystemdError
from fleetpy.systemd.fake import FakeUnitManager
from tests.systemd.contract import EXPECTED, GOOD, scenario


def test_contract_scenario() -> None:
    assert scenario(FakeUnitManager()) == EXPECTED


def test_one_call_per_states_query_and_none_for_nothing() -> None:
    fake = FakeUnitManager()
    fake.load("a.service", GOOD)
    fake.states(["a.service", "b.service"])
    fake.states([])
    assert fake.count("states") == 1


def test_injected_failures_raise_once_naming_call_and_unit() -> None:
    fake = FakeUnitManager()
    fake.fail("load", "a.service", "disk full")
    with pytest.raises(SystemdError, match=r"load a\.service: disk full"):
        fake.load("a.service", GOOD)
    fake.load("a.service", GOOD)
    assert fake.units() == {"a.service": GOOD.hash}


def test_kill_and_reject() -> None:
    fake = FakeUnitManager()
    fake.load("a.service", GOOD)
    fake.reload()
    fake.start("a.service")
    fake.kill("a.service")
    assert fake.states(["a.service"])["a.service"].active == "failed"
    fake.reject("a.service")
    assert fake.states(["a.service"])["a.service"].load == "bad-setting"
    with pytest.raises(SystemdError, match="bad unit file setting"):
        fake.start("a.service")
