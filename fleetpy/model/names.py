"""Unit names: fleet's validation rules and messages, template/instance parsing, CLI argument mangling.

Pure. Rules and messages from fleet-reference.md 2.2 (fleet ``api/units.go`` ValidateName, ``unit.NewUnitNameInfo``).
"""

from __future__ import annotations

import functools
import json
import posixpath
from dataclasses import dataclass

from fleetpy.errors import UnitNameError

MAX_NAME_LENGTH = 256

UNIT_TYPES = frozenset(
    {"automount", "busname", "device", "mount", "path", "scope", "service", "slice", "snapshot", "socket",
     "swap", "target", "timer"}
)
TEMPLATE_TYPES = frozenset({"path", "service", "socket", "target", "timer"})
# Types the CLI recognises when deciding whether to append ".service" to an argument (fleet's RecognizedUnitType).
RECOGNIZED_TYPES = frozenset({"service", "socket", "timer", "path", "device", "mount", "automount"})
_ALLOWED_EXTRA = frozenset(":-_.\\@")


def _q(text: str) -> str:
    """Go's %q for a string: double quotes, control characters escaped (the message stays one line)."""
    return json.dumps(text, ensure_ascii=False)


def validate_name(name: str) -> None:
    """Raise UnitNameError with fleet's message when ``name`` is not a valid unit name."""
    if not name:
        raise UnitNameError("unit name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise UnitNameError(f"unit name exceeds maximum length ({MAX_NAME_LENGTH})")
    dot = name.rfind(".")
    if dot < 0:
        raise UnitNameError('unit name must contain "."')
    if dot == len(name) - 1:
        raise UnitNameError('unit name cannot end in "."')
    suffix = name[dot + 1 :]
    if suffix not in UNIT_TYPES:
        raise UnitNameError(f"invalid unit type: {_q(suffix)}")
    if "@" in name and suffix not in TEMPLATE_TYPES:
        raise UnitNameError(f"invalid unit type for template: {_q(suffix)}")
    for ch in name[:dot]:
        if not (ch.isascii() and (ch.isalnum() or ch in _ALLOWED_EXTRA)):
            raise UnitNameError(f"invalid character {ch!r} in unit name")
    if name.startswith("@"):
        raise UnitNameError('unit name cannot start in "@"')


@functools.lru_cache(maxsize=1 << 16)
def is_valid_name(name: str) -> bool:
    try:
        validate_name(name)
    except UnitNameError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class UnitNameInfo:
    """``foo@bar.service`` -> prefix ``foo``, instance ``bar``, suffix ``.service``, template ``foo@.service``.

    The suffix starts at the last ``.``, the instance at the first ``@`` (fleet's rules)."""

    full_name: str
    name: str  # full name without the suffix
    prefix: str
    instance: str
    suffix: str
    has_at: bool

    @classmethod
    def of(cls, full_name: str) -> UnitNameInfo:
        dot = full_name.rfind(".")
        base, suffix = (full_name[:dot], full_name[dot:]) if dot >= 0 else (full_name, "")
        at = base.find("@")
        if at >= 0:
            return cls(full_name, base, base[:at], base[at + 1 :], suffix, True)
        return cls(full_name, base, base, "", suffix, False)

    @property
    def is_instance(self) -> bool:
        return bool(self.instance)

    @property
    def is_template(self) -> bool:
        return self.has_at and not self.instance

    @property
    def template(self) -> str:
        return f"{self.prefix}@{self.suffix}"


def mangle(arg: str) -> str:
    """fleetctl's unitNameMangle: the basename of a CLI argument, ``.service`` appended when the suffix is not a
    recognised unit type."""
    base = posixpath.basename(arg)
    dot = base.rfind(".")
    if dot < 0 or base[dot + 1 :] not in RECOGNIZED_TYPES:
        return base + ".service"
    return base
