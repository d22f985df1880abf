"""fleet's page tokens: URL-safe base64 of the little-endian ``{uint16 Limit, uint16 Page}`` (``api/pagination.go``).

Pure. With limit 100, page 2 is ``ZAACAA==``. A token's limit must equal the server's ``token_limit`` and its page
must be > 0; more than one ``nextPageToken`` parameter is refused. A next token is handed out only when the page is
full, even if nothing follows (clients then get one empty page).
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from fleetpy.api.errors import ApiError

T = TypeVar("T")
_FORMAT = "<HH"


@dataclass(frozen=True, slots=True)
class PageToken:
    limit: int
    page: int = 1

    def next(self) -> PageToken:
        return PageToken(self.limit, self.page + 1)

    def encode(self) -> str:
        return base64.urlsafe_b64encode(struct.pack(_FORMAT, self.limit & 0xFFFF, self.page & 0xFFFF)).decode()

    @classmethod
    def decode(cls, value: str) -> PageToken:
        """Raise ApiError(400) for anything that is not base64 of at least four bytes (extra bytes are ignored,
        as Go's binary.Read does)."""
        try:
            raw = base64.b64decode(value.encode("ascii"), altchars=b"-_", validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError) as err:
            raise ApiError(400, f"illegal base64 data in page token: {err}") from err
        if len(raw) < 4:
            raise ApiError(400, "EOF" if not raw else "unexpected EOF")
        limit, page = struct.unpack(_FORMAT, raw[:4])
        return cls(limit, page)


def find_token(query: Mapping[str, Sequence[str]], limit: int) -> PageToken:
    """The request's token, validated against the server's limit; the first page when there is none."""
    values = query.get("nextPageToken", ())
    if len(values) > 1:
        raise ApiError(400, "too many values for page token")
    if not values:
        return PageToken(limit, 1)
    token = PageToken.decode(values[0])
    if token.limit != limit:
        raise ApiError(400, f"token limit must be {limit}")
    if token.page == 0:
        raise ApiError(400, "token page must be greater than zero")
    return token


def page_of(items: Sequence[T], token: PageToken) -> tuple[list[T], PageToken | None]:
    """The slice for ``token`` and the next token (only when this page is full)."""
    start = (token.page - 1) * token.limit
    stop = token.page * token.limit
    if start >= len(items):
        return [], None
    if stop > len(items):
        return list(items[start:]), None
    return list(items[start:stop]), token.next()
