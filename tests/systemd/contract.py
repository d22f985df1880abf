"""One scenario run against any UnitManager (the fake in-process, the D-Bus driver inside a lab node): what it
observes must be the same, which keeps FakeUnitManager honest. Importable inside a node (no pytest needed)."""

from __future__ import annotations

import time
from typing import Any

from fleetpy.errors import SystemdError
from fleetpy.model.unit import UnitFile
from fleetpy.systemd.base import SystemdState, UnitManager

GOOD = UnitFile.parse("[Unit]\nDescription=contract\n[Service]\nExecStart=/bin/sleep 1000\n")
GOOD2 = UnitFile.parse("[Unit]\nDescription=contract v2\n[Service]\nExecStart=/bin/sleep 1001\n")
BAD = UnitFile.parse("[Unit]\nDescription=no command\n[Service]\nType=simple\n")


def settle(manager: UnitManager, name: str, wanted: tuple[str, str], timeout: float = 5.0) -> SystemdState:
    """Poll until (active, sub) == wanted or timeout; the last state seen."""
    deadline = time.monotonic() + timeout
    while True:
        state = manager.states([name])[name]
        if (state.active, state.sub) == wanted or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def triple(state: SystemdState) -> tuple[str, str, str]:
    return state.load, state.active, state.sub


def error_of(fn: Any, *args: Any) -> str:
    try:
        fn(*args)
    except SystemdError as err:
        return str(err)
    return ""


def scenario(manager: UnitManager, prefix: str = "contract") -> list[Any]:
    a, bad = f"{prefix}-a.service", f"{prefix}-bad.service"
    out: list[Any] = []
    manager.load(a, GOOD)
    manager.load(bad, BAD)
    out.append(("units", sorted((n, h) for n, h in manager.units().items() if n.startswith(prefix))))
    manager.reload()
    out.append(("loaded", triple(manager.states([a])[a])))
    manager.start(a)
    out.append(("started", triple(settle(manager, a, ("active", "running")))))
    manager.stop(a)
    out.append(("stopped", triple(settle(manager, a, ("inactive", "dead")))))
    b = manager.states([bad])[bad]
    out.append(("refused", b.load))
    message = error_of(manager.start, bad)
    out.append(("start-refused-names-call-and-unit", message.startswith(f"StartUnit {bad}:")))
    missing = f"{prefix}-missing.service"
    out.append(("start-missing-names-call-and-unit", error_of(manager.start, missing).startswith(
        f"StartUnit {missing}:")))
    failures = manager.start_many([missing, a])
    out.append(("start-many-fails-only-the-missing", sorted(failures)))
    settle(manager, a, ("active", "running"))
    manager.load(a, GOOD2)  # replacing content: unload first is the agent's job; load overwrites
    out.append(("hash-after-replace", manager.units()[a] == GOOD2.hash))
    fresh = f"{prefix}-fresh.service"
    manager.load(fresh, GOOD)  # systemd has never seen it: it starts with no daemon-reload (systemd >= 246)
    manager.start(fresh)
    out.append(("new-file-starts-without-reload", triple(settle(manager, fresh, ("active", "running")))))
    manager.load(missing, GOOD)  # systemd looked it up before and found nothing: it looks again
    manager.start(missing)
    out.append(("not-found-then-linked-starts-without-reload",
                triple(settle(manager, missing, ("active", "running")))))
    for name in (a, bad, fresh, missing):
        manager.unload(name)
    manager.reload()
    # StopUnit returns once the job is queued: on a loaded machine the process may outlive the reload a moment
    out.append(("unloaded", triple(settle(manager, a, ("inactive", "dead")))))
    out.append(("units-after", sorted(n for n in manager.units() if n.startswith(prefix))))
    out.append(("states-of-nothing", manager.states([])))
    return out


EXPECTED: list[Any] = [
    ("units", sorted([("contract-a.service", GOOD.hash), ("contract-bad.service", BAD.hash)])),
    ("loaded", ("loaded", "inactive", "dead")),
    ("started", ("loaded", "active", "running")),
    ("stopped", ("loaded", "inactive", "dead")),
    ("refused", "bad-setting"),
    ("start-refused-names-call-and-unit", True),
    ("start-missing-names-call-and-unit", True),
    ("start-many-fails-only-the-missing", ["contract-missing.service"]),
    ("hash-after-replace", True),
    ("new-file-starts-without-reload", ("loaded", "active", "running")),
    ("not-found-then-linked-starts-without-reload", ("loaded", "active", "running")),
    ("unloaded", ("not-found", "inactive", "dead")),
    ("units-after", []),
    ("states-of-nothing", {}),
]
