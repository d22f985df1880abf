"""Helpers shared by the walkthrough tests: repository paths and external tools that skip locally, fail in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "units"
DOCKER_RUN = REPO / "scripts" / "docker-run.sh"
VAGRANT_DIR = REPO / "vagrant"


def require(tool: str, package: str) -> str:
    """The tool's path; without it the test skips locally and fails in CI (``CI`` set), so a missing install
    step shows."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} missing in CI: apt-get install {package}")
        pytest.skip(f"{tool} not installed (apt-get install {package})")
    return path
