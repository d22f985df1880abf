"""Unit files as values: parse (systemd.syntax(7) with fleet's rules), canonical serialization, SHA1 hash.

Pure: no I/O beyond ``UnitFile.from_path``. fleet stores, hashes and ``cat``s the canonical form, never the raw
bytes, so comments and blank-line layout are lost on purpose (fleet-reference.md 2.1).
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from fleetpy.errors import UnitFileError

MAX_LINE_BYTES = 2048
"""fleet (go-systemd) refuses any line longer than this."""

MAX_UNIT_BYTES = 1024 * 1024
"""A unit file bigger than this is refused outright (fleetpy's own limit: etcd values are capped anyway)."""

XFLEET = "X-Fleet"


@dataclass(frozen=True, slots=True)
class UnitOption:
    """One ``Name=Value`` assignment inside a section, in file order."""

    section: str
    name: str
    value: str


def _split_multivalue(value: str) -> list[str]:
    """Split a quoted ``[X-Fleet]`` value: ``"a=b" "c=d"`` -> ``[a=b, c=d]`` (fleet's parseMultivalueLine)."""
    values: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
            continue
        if ch == " " and not quoted:
            if current:
                values.append("".join(current))
                current = []
            continue
        current.append(ch)
    if current:
        values.append("".join(current))
    return values


@dataclass(frozen=True, slots=True)
class UnitFile:
    """An ordered list of options; everything else (canonical text, hash, lookups) derives from it."""

    options: tuple[UnitOption, ...] = ()
    contents: str = field(init=False, repr=False, compare=False)
    hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = serialize(self.options)
        object.__setattr__(self, "contents", text)
        object.__setattr__(self, "hash", hashlib.sha1(text.encode("utf-8")).hexdigest())

    # -- constructors -------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, *, source: str = "unit file") -> UnitFile:
        return cls(tuple(parse_options(text, source=source)))

    @classmethod
    def from_path(cls, path: str | pathlib.Path) -> UnitFile:
        p = pathlib.Path(path)
        try:
            size = p.stat().st_size
            if size > MAX_UNIT_BYTES:
                raise UnitFileError(f"{p}: file too large ({size} bytes, max {MAX_UNIT_BYTES})")
            raw = p.read_bytes()
        except OSError as err:
            raise UnitFileError(f"{p}: cannot read: {err.strerror or err}") from err
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UnitFileError(f"{p}: not valid UTF-8 (byte {err.start})") from err
        return cls.parse(text, source=str(p))

    # -- lookups ------------------------------------------------------------------------------------------
    @property
    def short_hash(self) -> str:
        return self.hash[:7]

    @property
    def hash_bytes(self) -> list[int]:
        """The hash as fleet's ``[20]byte`` JSON array."""
        return list(bytes.fromhex(self.hash))

    def sections(self) -> list[str]:
        seen: dict[str, None] = {}
        for opt in self.options:
            seen.setdefault(opt.section, None)
        return list(seen)

    def has_section(self, section: str) -> bool:
        return any(opt.section == section for opt in self.options)

    def values(self, section: str, name: str) -> list[str]:
        """All values of ``name`` in ``section`` in order; ``[X-Fleet]`` quoted multi-values are split."""
        out: list[str] = []
        for opt in self.options:
            if opt.section != section or opt.name != name:
                continue
            if section == XFLEET and len(opt.value) >= 2 and opt.value[0] == '"' and opt.value[-1] == '"':
                out.extend(_split_multivalue(opt.value))
            else:
                out.append(opt.value)
        return out

    def xfleet(self) -> dict[str, list[str]]:
        """The ``[X-Fleet]`` section as name -> values (multi-values split), keys in first-seen order."""
        names: dict[str, None] = {}
        for opt in self.options:
            if opt.section == XFLEET:
                names.setdefault(opt.name, None)
        return {name: self.values(XFLEET, name) for name in names}

    @property
    def description(self) -> str:
        found = self.values("Unit", "Description")
        return found[0] if found else ""


def serialize(options: Iterable[UnitOption]) -> str:
    """fleet's canonical form: sections in first-seen order, options grouped under them in input order,
    ``Name=Value\\n`` each, one blank line between sections, none at the end."""
    grouped: dict[str, list[UnitOption]] = {}
    for opt in options:
        grouped.setdefault(opt.section, []).append(opt)
    blocks = []
    for section, opts in grouped.items():
        lines = [f"[{section}]\n"] + [f"{o.name}={o.value}\n" for o in opts]
        blocks.append("".join(lines))
    return "\n".join(blocks)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.split("\n"), start=1):
        yield number, line.removesuffix("\r")


def parse_options(text: str, *, source: str = "unit file") -> list[UnitOption]:
    """Parse unit file text into options.

    Rules (systemd.syntax(7) and go-systemd as vendored by fleet): whole-line ``#``/``;`` comments; ``[Section]``
    headers with nothing after the ``]``; ``Name=Value`` split at the first ``=``, both sides trimmed; keys are
    case-sensitive and repeats are kept in order; a trailing backslash continues the value on the next line, the
    lines joined with ``\\n`` and the backslash kept (comment lines inside a continuation are skipped); any line
    over 2048 bytes is refused.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_UNIT_BYTES:
        raise UnitFileError(f"{source}: file too large (max {MAX_UNIT_BYTES} bytes)")
    if "\x00" in text:
        raise UnitFileError(f"{source}: contains a NUL byte")
    options: list[UnitOption] = []
    section: str | None = None
    pending: tuple[str, list[str]] | None = None  # (name, value parts) of a continued assignment
    for number, line in _lines(text):
        if len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
            raise UnitFileError(f"{source}: line {number}: line too long (max {MAX_LINE_BYTES} bytes)")
        stripped = line.strip()
        if pending is not None:
            if stripped.startswith(("#", ";")):
                continue
            if not stripped:
                name, parts = pending
                options.append(UnitOption(section or "", name, "\n".join(parts).strip()))
                pending = None
                continue
            pending[1].append(line)
            if not line.rstrip().endswith("\\"):
                name, parts = pending
                options.append(UnitOption(section or "", name, "\n".join(parts).strip()))
                pending = None
            continue
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("["):
            end = stripped.find("]")
            if end < 0:
                raise UnitFileError(f"{source}: line {number}: section header not closed: {stripped!r}")
            if stripped[end + 1 :].strip():
                raise UnitFileError(f"{source}: line {number}: garbage after section header: {stripped!r}")
            name = stripped[1:end]
            if not name or any(c in name for c in "[]\n"):
                raise UnitFileError(f"{source}: line {number}: invalid section name: {stripped!r}")
            section = name
            continue
        if "=" not in stripped:
            raise UnitFileError(f"{source}: line {number}: expected Name=Value, got {stripped!r}")
        if section is None:
            raise UnitFileError(f"{source}: line {number}: assignment outside of any section")
        key, _, value = stripped.partition("=")
        key = key.strip()
        if not key:
            raise UnitFileError(f"{source}: line {number}: assignment with an empty name")
        value = value.strip()
        if value.endswith("\\"):
            pending = (key, [value])
            continue
        options.append(UnitOption(section, key, value))
    if pending is not None:
        name, parts = pending
        options.append(UnitOption(section or "", name, "\n".join(parts).strip()))
    return options
