"""``Reporter``: how client operations tell the user about progress (``Unit x launched on ...``, warnings).

Pure port. The CLI passes one that writes to stdout/stderr; tests pass ``RecordingReporter``. Client code never
prints directly, so it runs the same under click's CliRunner, a subprocess or a library caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Reporter(Protocol):
    def out(self, line: str) -> None:
        """A line for stdout (results fleetctl prints on stdout)."""
        ...

    def err(self, line: str) -> None:
        """A line for stderr (warnings, progress notes, fleet's stderr messages)."""
        ...


@dataclass
class RecordingReporter:
    """Keeps every line, in order, tagged with its stream."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def out(self, line: str) -> None:
        self.lines.append(("out", line))

    def err(self, line: str) -> None:
        self.lines.append(("err", line))

    @property
    def stdout(self) -> list[str]:
        return [text for stream, text in self.lines if stream == "out"]

    @property
    def stderr(self) -> list[str]:
        return [text for stream, text in self.lines if stream == "err"]
