"""Fixtures shared by the engine's tests: a fake clock (time passes only when a test advances it)."""

from __future__ import annotations

import pytest

from fleetpy.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
