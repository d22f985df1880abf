"""The relay message: what the leading engine writes to ``<prefix>fleetpy/inbox/<machine>`` (fleetpy's own key).

Pure. One message says either "re-read the job tree" (``reset``: a new leadership term, or a machine the relay
has just seen) or "here are these units' ``job/<unit>/`` keys, as the store held them at ``index`` or later"
(``units``: name -> field -> (value, modified index); None where the unit's directory is gone). ``leader`` and
``term`` name the engine and the term that sent it: an agent trusts a relay only while its leader holds the
engine lease (``fleetpy.agent.feed``). An inbox that holds ``{}`` was created by its agent to say it listens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from fleetpy.errors import RegistryError

Fields = Mapping[str, tuple[str, int]]  # job field (object, target-state, ...) -> (value, modified index)
LISTENING = "{}"


@dataclass(frozen=True, slots=True)
class Relayed:
    leader: str
    term: str
    index: int
    reset: bool = False
    units: Mapping[str, Fields | None] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def source(self) -> tuple[str, str]:
        return self.leader, self.term


def encode(message: Relayed) -> str:
    body: dict[str, Any] = {"Leader": message.leader, "Term": message.term, "Index": message.index}
    if message.reset:
        body["Reset"] = True
    else:
        body["Units"] = {name: None if fields is None else {f: [v, i] for f, (v, i) in sorted(fields.items())}
                         for name, fields in sorted(message.units.items())}
    return json.dumps(body, separators=(",", ":"))


def decode(raw: str) -> Relayed | None:
    """The message in an inbox; None for an inbox that only says its agent listens. RegistryError when it is not
    a relay message."""
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise TypeError("not an object")
        if "Leader" not in body:
            return None
        units: dict[str, Fields | None] = {}
        for name, fields in (body.get("Units") or {}).items():
            units[str(name)] = None if fields is None else MappingProxyType(
                {str(f): (str(v), int(i)) for f, (v, i) in fields.items()})
        return Relayed(str(body["Leader"]), str(body["Term"]), int(body["Index"]), bool(body.get("Reset", False)),
                       MappingProxyType(units))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise RegistryError(f"unreadable relay message: {err}") from err
