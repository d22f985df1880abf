"""Page tokens are fleet's bytes (``ZAACAA==`` = limit 100, page 2) and pages end exactly where fleet's end."""

from __future__ import annotations

import pytest

from fleetpy.api.errors import ApiError
from fleetpy.api.pagination import PageToken, find_token, page_of


@pytest.mark.parametrize(
    ("token", "encoded"),
    [
        pytest.param(PageToken(100, 2), "ZAACAA==", id="limit100-page2"),
        pytest.param(PageToken(100, 1), "ZAABAA==", id="limit100-page1"),
        pytest.param(PageToken(60, 2), "PAACAA==", id="limit60-page2"),
        pytest.param(PageToken(65535, 65535), "_____w==", id="max"),
    ],
)
def test_encoding_matches_fleet(token: PageToken, encoded: str) -> None:
    assert token.encode() == encoded
    assert PageToken.decode(encoded) == token


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param({"nextPageToken": ["ZAACAA==", "ZAACAA=="]}, "too many values for page token", id="two"),
        pytest.param({"nextPageToken": ["EwBMLg=="]}, "token limit must be 100", id="fleet-test-limit"),
        pytest.param({"nextPageToken": ["ZAAAAA=="]}, "token page must be greater than zero", id="page0"),
        pytest.param({"nextPageToken": [""]}, "EOF", id="empty"),
        pytest.param({"nextPageToken": ["ZAA="]}, "unexpected EOF", id="short"),
        pytest.param({"nextPageToken": ["ZAACAA"]}, None, id="unpadded"),
        pytest.param({"nextPageToken": ["ZA+CAA=="]}, None, id="std-alphabet"),
        pytest.param({"nextPageToken": ["é"]}, None, id="non-ascii"),
    ],
)
def test_bad_tokens_are_400(query: dict[str, list[str]], message: str | None) -> None:
    with pytest.raises(ApiError) as info:
        find_token(query, 100)
    assert info.value.code == 400
    if message is not None:
        assert info.value.message == message


def test_no_token_is_page_one_and_extra_bytes_are_ignored() -> None:
    assert find_token({}, 100) == PageToken(100, 1)
    assert find_token({"nextPageToken": ["ZAACAAAA"]}, 100) == PageToken(100, 2)  # Go's binary.Read reads 4


def test_next_token_only_when_the_page_is_full() -> None:
    items = list(range(250))
    assert page_of(items, PageToken(100, 1)) == (items[:100], PageToken(100, 2))
    assert page_of(items, PageToken(100, 3)) == (items[200:], None)
    assert page_of(items, PageToken(100, 4)) == ([], None)
    full, nxt = page_of(items[:200], PageToken(100, 2))
    assert len(full) == 100 and nxt == PageToken(100, 3)  # full page: a token although nothing follows
    assert page_of([], PageToken(100, 1)) == ([], None)
