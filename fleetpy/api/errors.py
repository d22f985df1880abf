"""The API's error type and fleet's error body: ``{"error":{"code":N,"message":"..."}}``.

Pure. Handlers raise ``ApiError``; the router turns it into a response. Messages are fleet's, quoted the way Go's
``%q`` quotes (``go_quote``), so clients and tests can compare them verbatim.
"""

from __future__ import annotations

from fleetpy.errors import FleetError
from fleetpy.registry.codec import go_json


class ApiError(FleetError):
    """An HTTP error with fleet's status code and message (an empty message is what fleet sends for 404/405/500)."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or f"HTTP {code}")
        self.code = code
        self.message = message


class ListenError(FleetError):
    """The API server could not listen where it was told to."""


def error_body(code: int, message: str = "") -> bytes:
    return go_json({"error": {"code": code, "message": message}}).encode("utf-8")


def go_quote(text: str) -> str:
    """Go's ``%q`` for the strings that appear in fleet's messages (ASCII escapes for the usual suspects)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
