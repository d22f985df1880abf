"""Go's ``text/tabwriter`` as fleetctl configures it (minwidth 0, tabwidth 8, padding 1, padchar TAB, flags 0), and
the table shape every list command prints (upper-cased legend, tab-joined cells).

Pure. Reproduces the Go algorithm: a column is a run of consecutive lines that have a tab-terminated cell at that
index (the text after a line's last tab belongs to no column); its width is the widest cell plus the padding,
rounded up to a multiple of the tab width; each cell is followed by as many tabs as it takes to reach that width.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from fleetpy.api.errors import go_quote
from fleetpy.client.errors import OutputFormatError

T = TypeVar("T")


def tabwrite(text: str, *, minwidth: int = 0, tabwidth: int = 8, padding: int = 1) -> str:
    """Align ``text`` (lines of tab-terminated cells) exactly as Go's tabwriter with padchar '\\t' does."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[int] = []
    out: list[str] = []

    def pad(text_width: int, cell_width: int) -> str:
        cell_width = -(-cell_width // tabwidth) * tabwidth  # smallest multiple of tabwidth
        return "\t" * -(-(cell_width - text_width) // tabwidth)

    def write_lines(first: int, last: int) -> None:
        for cells in lines[first:last]:
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell)
                if j < len(widths):
                    parts.append(pad(len(cell), widths[j]))
            out.append("".join(parts))

    def format_block(first: int, last: int) -> None:
        column = len(widths)
        this = first
        while this < last:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(first, this)
            first = this
            width = minwidth
            while this < last and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(first, this)
            widths.pop()
            first = this
        write_lines(first, last)

    format_block(0, len(lines))
    return "\n".join(out)


def parse_fields(spec: str, valid: Iterable[str]) -> list[str]:
    """fleetctl's --fields check: "Must define output format" when empty, fleet's quoted message for an unknown key."""
    if spec == "":
        raise OutputFormatError("Must define output format")
    allowed = set(valid)
    columns = spec.split(",")
    for column in columns:
        if column not in allowed:
            raise OutputFormatError(f"Invalid key in output format: {go_quote(column)}")  # Go's %q: one line
    return columns


def table(columns: Sequence[str], rows: Iterable[T], cell: Callable[[T, str], str], *, legend: bool = True) -> str:
    """The whole output of a list command: legend (field names upper-cased) then one line per row, tab-aligned."""
    lines = ["\t".join(c.upper() for c in columns)] if legend else []
    lines.extend("\t".join(cell(row, c) for c in columns) for row in rows)
    return tabwrite("".join(line + "\n" for line in lines))
