"""Go tabwriter semantics (pure): every recorded fleetctl table is rebuilt from its cells, plus the corner cases."""

from __future__ import annotations

import pathlib
import re

import pytest

from fleetpy.cli.render import parse_fields, table, tabwrite
from fleetpy.client.errors import OutputFormatError

RECORDED = sorted((pathlib.Path(__file__).parent.parent / "golden" / "fleetctl-1.0").glob("*.txt"))


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_recorded_tables_rebuilt_from_cells(path: pathlib.Path) -> None:
    recorded = path.read_text()
    cells = "".join("\t".join(re.split(r"\t+", line)) + "\n" for line in recorded.splitlines())
    assert tabwrite(cells) == recorded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("a\n", "a\n", id="one-cell-lines-are-not-columns"),
        pytest.param("a\tb\n", "a\tb\n", id="width-2-pads-to-8"),
        pytest.param("abcdefg\tb\n", "abcdefg\tb\n", id="7-chars-plus-padding-is-8"),
        pytest.param("abcdefgh\tb\n", "abcdefgh\tb\n", id="8-chars-pads-to-16-one-tab"),
        pytest.param("abcdefgh\tb\nx\ty\n", "abcdefgh\tb\nx\t\ty\n", id="short-cell-gets-two-tabs"),
        pytest.param("a\tb\nno-tab-line\nlongerthan8\tc\n", "a\tb\nno-tab-line\nlongerthan8\tc\n",
                     id="a-line-without-tabs-ends-the-column-block"),
        pytest.param("\tb\nxxxxxxxxxx\tc\n", "\t\tb\nxxxxxxxxxx\tc\n", id="empty-cell-padded"),
        pytest.param("a\tb\tc\nd\n", "a\tb\tc\nd\n", id="trailing-cell-not-aligned"),
        pytest.param("ü\tx\nabcdefgh\ty\n", "ü\t\tx\nabcdefgh\ty\n", id="width-counts-characters-not-bytes"),
        pytest.param("a\tb", "a\tb", id="no-final-newline-kept"),
    ],
)
def test_tabwriter_cases(text: str, expected: str) -> None:
    assert tabwrite(text) == expected


def test_nested_column_blocks() -> None:
    """Column 1 widths are computed per block of lines that have a column 1 (Go's recursive format)."""
    text = "a\tbbbbbbbbbbbb\tc\nd\te\nffffffffff\tg\th\n"
    assert tabwrite(text) == "a\t\tbbbbbbbbbbbb\tc\nd\t\te\nffffffffff\tg\th\n"


def test_table_legend_and_rows() -> None:
    out = table(["unit", "hash"], [("x.service", "1234567")], lambda row, f: row[0] if f == "unit" else row[1])
    assert out == "UNIT\t\tHASH\nx.service\t1234567\n"
    assert table(["unit"], [], lambda row, f: "", legend=False) == ""


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "Must define output format"), ("unit,desc", 'Invalid key in output format: "desc"'),
     ("unit,,hash", 'Invalid key in output format: ""'), ("UNIT", 'Invalid key in output format: "UNIT"')],
)
def test_field_errors_are_fleets(spec: str, message: str) -> None:
    with pytest.raises(OutputFormatError) as info:
        parse_fields(spec, ["unit", "hash"])
    assert str(info.value) == message


def test_fields_keep_order_and_repeats() -> None:
    assert parse_fields("hash,unit,hash", ["unit", "hash"]) == ["hash", "unit", "hash"]
