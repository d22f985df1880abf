"""The client's failures, as leaves of the one hierarchy in ``fleetpy.errors``.

Pure. Each carries the exact words fleetctl prints; ``fleetpy.cli.exits`` decides how they are shown and with
which exit status (the one place that maps errors to exit codes).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetpy.errors import FleetError, UsageError


class UnitCreationError(FleetError):
    """A unit argument could not become a registry unit (shown as ``Error creating units: ...``)."""


class UnitNotFound(FleetError, LookupError):
    """A unit named on the command line is not in the registry (message is fleet's, e.g. ``Unit x not found``)."""


class UnitStateError(FleetError):
    """The unit is in a state the command cannot act on (``Unable to stop unit x in state inactive``)."""


class OutputFormatError(UsageError):
    """``--fields`` is empty or names an unknown key (fleet's exact message, printed as is)."""


class WaitFailed(FleetError):
    """Some units did not reach the awaited state: one ``Error waiting for units: ...`` line per unit, then an
    optional summary line (``Failed to stop units [a]. exit == 1.``)."""

    def __init__(self, errors: Sequence[str], summary: str = "", *, prefix: str = "Error waiting for units") -> None:
        super().__init__("; ".join(errors))
        self.errors = tuple(errors)
        self.summary = summary
        self.prefix = prefix

    def lines(self) -> list[str]:
        out = [f"{self.prefix}: {err}" for err in self.errors]
        return out + ([self.summary] if self.summary else [])
