"""Unit files: fleet's hash vectors, the parser's edge cases, the canonical form, and the real-world corpus."""

from __future__ import annotations

import pathlib

import pytest

from fleetpy.errors import UnitFileError
from fleetpy.model.unit import MAX_LINE_BYTES, UnitFile, UnitOption

# fleet unit/unit_test.go TestUnitHash, systemd/manager_test.go TestHashUnitFileDirectory, SHA1 of nothing
HASH_VECTORS = [
    ("[Service]\nExecStart=/bin/sleep 100\n", "1c6fb6f3684bafb0c173d8b8b957ceff031180c1"),
    ("[Service]\nExecStart=/usr/bin/sleep infinity", "40ea6646945809f4b420a50475ee68503088f127"),
    ("[Service]\nExecStart=/usr/bin/sleep 10", "5bf16b98c62f35fcdc723d32989cdeba7a2dd2a8"),
    ("[Service]\nExecStart=/usr/bin/sleep 2000", "5ba5292ab6a82b623ee6086dc90b3354ba004832"),
    ("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
]


@pytest.mark.parametrize(("text", "digest"), HASH_VECTORS, ids=["sleep-100", "infinity-no-newline", "sleep-10",
                                                                 "sleep-2000", "empty"])
def test_fleet_hash_vectors(text: str, digest: str) -> None:
    unit = UnitFile.parse(text)
    assert unit.hash == digest
    assert unit.short_hash == digest[:7]
    assert unit.hash_bytes == list(bytes.fromhex(digest))


def opts(text: str) -> list[tuple[str, str, str]]:
    return [(o.section, o.name, o.value) for o in UnitFile.parse(text).options]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("[Unit]\n;ignore this guy\nDescription = Foo\n\n[Service]\nExecStart=echo \"ping\";\n"
                     "ExecStop=echo \"pong\"\n# ignore me, too\nExecStop=echo post\n",
                     [("Unit", "Description", "Foo"), ("Service", "ExecStart", 'echo "ping";'),
                      ("Service", "ExecStop", 'echo "pong"'), ("Service", "ExecStop", "echo post")],
                     id="fleet-TestDeserialize-comments-repeats-trimming"),
        pytest.param("[Service]\nExecStart=jim\n<<<<<<<<<<<=bar\n",
                     [("Service", "ExecStart", "jim"), ("Service", "<<<<<<<<<<<", "bar")],
                     id="fleet-garbage-with-equals-passes-through"),
        pytest.param("[Service]\nExecStart=/bin/a # not a comment\n",
                     [("Service", "ExecStart", "/bin/a # not a comment")], id="inline-hash-is-value"),
        pytest.param("[Service]\nExecStart=echo \\\n  \"pi\\\n  ng\"\n",
                     [("Service", "ExecStart", 'echo \\\n  "pi\\\n  ng"')], id="continuation-keeps-backslash"),
        pytest.param("[Service]\nExecStart=a \\\n# comment\n b\n",
                     [("Service", "ExecStart", "a \\\n b")], id="comment-inside-continuation-skipped"),
        pytest.param("[Service]\nExecStart=a \\\n\nExecStop=b\n",
                     [("Service", "ExecStart", "a \\"), ("Service", "ExecStop", "b")],
                     id="blank-line-ends-continuation"),
        pytest.param("[Service]\nExecStart=a \\", [("Service", "ExecStart", "a \\")], id="continuation-at-eof"),
        pytest.param("[Service]\r\nExecStart=a\r\n", [("Service", "ExecStart", "a")], id="crlf"),
        pytest.param("[Unit]\nDescription=\n", [("Unit", "Description", "")], id="empty-value"),
        pytest.param("[Unit]\nA=b=c\n", [("Unit", "A", "b=c")], id="split-at-first-equals"),
        pytest.param("[Unit]   \nA=1\n", [("Unit", "A", "1")], id="whitespace-after-section-ok"),
        pytest.param("[X-Fleet]\nConflicts=a*\nConflicts=b*\n",
                     [("X-Fleet", "Conflicts", "a*"), ("X-Fleet", "Conflicts", "b*")], id="repeats-kept"),
        pytest.param("[Unit]\nDescription=%i and %n\n", [("Unit", "Description", "%i and %n")],
                     id="specifiers-untouched"),
    ],
)
def test_parse(text: str, expected: list[tuple[str, str, str]]) -> None:
    assert opts(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[Unit] garbage\n", "line 1: garbage after section header", id="garbage-after-section"),
        pytest.param("[Unit\n", "line 1: section header not closed", id="unclosed-section"),
        pytest.param("[]\n", "line 1: invalid section name", id="empty-section"),
        pytest.param("[Unit]\n\n[Service]\n<<<<<<<<<<<<<<<<\n", "line 4: expected Name=Value",
                     id="fleet-TestBadUnitsFail-1"),
        pytest.param("[Unit]\nnonsense upon stilts\n", "line 2: expected Name=Value", id="fleet-TestBadUnitsFail-2"),
        pytest.param("A=1\n[Unit]\n", "line 1: assignment outside of any section", id="option-before-section"),
        pytest.param("[Unit]\n=value\n", "line 2: assignment with an empty name", id="empty-name"),
        pytest.param("[Unit]\nA=\x00\n", "contains a NUL byte", id="nul"),
    ],
)
def test_parse_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(UnitFileError) as info:
        UnitFile.parse(text, source="x.service")
    text_of_error = str(info.value)
    assert text_of_error.startswith("x.service: ") and message in text_of_error
    assert "\n" not in text_of_error


def test_line_length_limit_counts_bytes() -> None:
    prefix = "ExecStart="
    fits = "[Service]\n" + prefix + "x" * (MAX_LINE_BYTES - len(prefix)) + "\n"
    assert UnitFile.parse(fits).values("Service", "ExecStart")[0].endswith("x")
    with pytest.raises(UnitFileError, match="line 2: line too long"):
        UnitFile.parse("[Service]\n" + prefix + "x" * (MAX_LINE_BYTES - len(prefix) + 1) + "\n")
    with pytest.raises(UnitFileError, match="line too long"):  # 1100 two-byte characters = 2200 bytes
        UnitFile.parse("[Unit]\nDescription=" + "é" * 1100 + "\n")


def test_canonical_form() -> None:
    text = "# header\n[A]\nx = 1\n\n\n[B]\ny=2\n[A]\nz=3\n"
    unit = UnitFile.parse(text)
    assert unit.contents == "[A]\nx=1\nz=3\n\n[B]\ny=2\n"
    assert unit.sections() == ["A", "B"]
    assert UnitFile.parse(unit.contents).contents == unit.contents  # a fixed point
    assert UnitFile.parse(unit.contents).hash == unit.hash
    assert UnitFile.parse("").contents == ""


def test_layout_does_not_change_the_hash() -> None:
    a = UnitFile.parse("[Service]\nExecStart=/bin/sleep 100\n")
    b = UnitFile.parse("# comment\n\n[Service]\n  ExecStart = /bin/sleep 100  \n\n")
    assert a.hash == b.hash == "1c6fb6f3684bafb0c173d8b8b957ceff031180c1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"a=b" "c=d"', ["a=b", "c=d"]), ('"bar" "ping" "pong"', ["bar", "ping", "pong"]), ('"bar"', ["bar"]),
     ('"bar', ['"bar']), ('bar"', ['bar"']), ('foo\\"bar', ['foo\\"bar']), ("a=b c=d", ["a=b c=d"]),
     ('"a b" "c"', ["a b", "c"])],
)
def test_xfleet_multivalue_quoting(value: str, expected: list[str]) -> None:
    unit = UnitFile.parse(f"[X-Fleet]\nMachineMetadata={value}\n\n[Unit]\nDescription={value}\n")
    assert unit.values("X-Fleet", "MachineMetadata") == expected
    assert unit.values("Unit", "Description") == [value]  # only [X-Fleet] values are split


def test_description_and_lookups() -> None:
    unit = UnitFile.parse("[Unit]\nDescription=first\nDescription=second\n\n[X-Fleet]\nGlobal=true\nA=1\n")
    assert unit.description == "first"
    assert unit.has_section("X-Fleet") and not unit.has_section("Install")
    assert unit.xfleet() == {"Global": ["true"], "A": ["1"]}
    assert UnitFile.parse("[Service]\nExecStart=x\n").description == ""
    assert UnitFile((UnitOption("Unit", "Description", "d"),)).contents == "[Unit]\nDescription=d\n"


def test_from_path_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UnitFileError, match="cannot read"):
        UnitFile.from_path(tmp_path / "missing.service")
    (tmp_path / "bin.service").write_bytes(b"\xff\xfe")
    with pytest.raises(UnitFileError, match="not valid UTF-8"):
        UnitFile.from_path(tmp_path / "bin.service")


CORPUS = sorted(p for p in pathlib.Path("/lib/systemd/system").rglob("*") if p.is_file())


@pytest.mark.skipif(not CORPUS, reason="no /lib/systemd/system on this machine")
def test_every_installed_systemd_unit_parses() -> None:
    failures = []
    for path in CORPUS:
        try:
            unit = UnitFile.from_path(path)
        except UnitFileError as err:
            failures.append(str(err))
            continue
        assert UnitFile.parse(unit.contents).contents == unit.contents, path  # the canonical form is a fixed point
    assert failures == []
    assert len(CORPUS) > 50
