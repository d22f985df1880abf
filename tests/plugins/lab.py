"""Fixtures for tests against a real lab (``fleetpy.lab.Lab``): a factory and a shared 3-node lab.

- ``lab_factory(nodes=1, **up_kwargs) -> Lab``: a new lab per call, named ``t<pid>-<n>`` with its state in a
  pytest temp dir (so parallel runs coexist); every lab it made is torn down after the test, pass or fail.
- ``lab3``: one 3-node lab per module (1 etcd member, **no agents**: start them with ``lab.start_agent``),
  always torn down at the end of the module.

Tests that need a lab carry ``@pytest.mark.lab``. They skip when not run as root, and skip when a prerequisite
(binary, cgroup2...) is missing, except in CI (``CI`` set), where a missing prerequisite fails the test.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleetpy.errors import LabError
from fleetpy.lab import Host, Lab
from fleetpy.lab.host import preflight

_counter = itertools.count(1)


def unique_lab_name() -> str:
    return f"t{os.getpid()}-{next(_counter)}"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def lab_unavailable() -> str | None:
    """Why no lab can run here, or None."""
    try:
        preflight(Host())
    except LabError as err:
        return str(err)
    return None


def require_lab() -> None:
    reason = lab_unavailable()
    if reason is None:
        return
    if os.geteuid() != 0:
        pytest.skip(f"lab tests need root: {reason}")
    if _in_ci():
        pytest.fail(f"lab prerequisites missing in CI: {reason}", pytrace=False)
    pytest.skip(f"lab prerequisites missing: {reason}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is not None:
        require_lab()


def _down_all(labs: list[Lab]) -> None:
    errors = []
    for lab in reversed(labs):
        try:
            lab.down()
        except LabError as err:
            errors.append(f"{lab.name}: {err}")
    if errors:
        pytest.fail("lab teardown failed: " + "; ".join(errors), pytrace=False)


@pytest.fixture
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Lab]]:
    require_lab()
    labs: list[Lab] = []

    def make(nodes: int = 1, **up_kwargs: Any) -> Lab:
        lab = Lab(unique_lab_name(), state_dir=tmp_path_factory.mktemp("lab"))
        labs.append(lab)
        return lab.up(nodes=nodes, **up_kwargs)

    try:
        yield make
    finally:
        _down_all(labs)


@pytest.fixture(scope="module")
def lab3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_lab()
    lab = Lab(unique_lab_name(), state_dir=tmp_path_factory.mktemp("lab3"))
    try:
        lab.up(nodes=3, etcd_members=1, agents=False, metadata={"node1": {"role": "db"}})
        yield lab
    finally:
        _down_all([lab])
