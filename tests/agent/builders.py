"""Readable builders for agent tests: unit files with a marker line (so contents and hashes differ), units."""

from __future__ import annotations

from fleetpy.agent.plan import LocalUnit
from fleetpy.model.records import JobState, Unit
from fleetpy.model.unit import UnitFile

ME = "m1" + "0" * 30
OTHER = "m2" + "0" * 30


def unit_file(version: str = "v1", *, install: bool = False, **xfleet: str | list[str]) -> UnitFile:
    lines = ["[Unit]", f"Description={version}", "[Service]", "ExecStart=/bin/sleep 1000"]
    if xfleet:
        lines.append("[X-Fleet]")
        for key, values in xfleet.items():
            for value in [values] if isinstance(values, str) else values:
                lines.append(f"{key}={value}")
    if install:
        lines += ["[Install]", "WantedBy=multi-user.target"]
    return UnitFile.parse("\n".join(lines) + "\n")


def unit(name: str, state: JobState | str = JobState.LAUNCHED, version: str = "v1", **xfleet: str | list[str]
         ) -> Unit:
    return Unit(name, unit_file(version, **xfleet), JobState(state))


def local(name: str, state: JobState | str = JobState.LAUNCHED, version: str = "v1") -> LocalUnit:
    return LocalUnit(name, unit_file(version).hash, JobState(state))
