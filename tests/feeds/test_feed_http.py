"""Tests for feeds.http: conditional GET decisions and cache headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from feeds.http import (
    cache_headers,
    choose_encoding,
    etag_matches,
    format_http_date,
    is_not_modified,
    parse_entity_tags,
    parse_http_date,
    variant_etag,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
TABLE: dict[str, Any] = json.loads((FIXTURES / "conditional_get.json").read_text(encoding="utf-8"))
ETAG: str = TABLE["etag"]
LAST_MODIFIED = datetime.fromisoformat(TABLE["last_modified"])


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["id"] for c in TABLE["cases"]])
def test_conditional_get_table(case: dict[str, Any]) -> None:
    assert is_not_modified(case["headers"], ETAG, LAST_MODIFIED) is case["expected"]


def test_weak_server_etag_matches_strong_client_tag() -> None:
    assert is_not_modified({"If-None-Match": '"abc123"'}, 'W/"abc123"', LAST_MODIFIED)
    assert is_not_modified({"If-None-Match": 'W/"abc123"'}, 'W/"abc123"', LAST_MODIFIED)


def test_last_modified_is_compared_at_second_precision() -> None:
    fractional = LAST_MODIFIED + timedelta(milliseconds=700)
    assert is_not_modified({"If-Modified-Since": "Thu, 02 May 2024 08:00:00 GMT"}, ETAG, fractional)


def test_last_modified_in_other_zone_or_naive() -> None:
    bucharest = LAST_MODIFIED.astimezone(timezone(timedelta(hours=3)))
    headers = {"If-Modified-Since": "Thu, 02 May 2024 08:00:00 GMT"}
    assert is_not_modified(headers, ETAG, bucharest)
    assert is_not_modified(headers, ETAG, LAST_MODIFIED.replace(tzinfo=None))
    assert not is_not_modified(headers, ETAG, LAST_MODIFIED + timedelta(seconds=1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"a"', ['"a"']),
        ('"a", W/"b" ,"c"', ['"a"', 'W/"b"', '"c"']),
        ('""', ['""']),
        ("*", ["*"]),
        (" * ", ["*"]),
        ('"a,b"', ['"a,b"']),
        ("a", None),
        ('"a" "b"', None),
        ('"a", *', None),
        ('w/"a"', None),
    ],
)
def test_parse_entity_tags(value: str, expected: list[str] | None) -> None:
    assert parse_entity_tags(value) == expected


def test_etag_matches_accepts_unquoted_server_etag() -> None:
    assert etag_matches('"abc"', "abc")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Sunday, 06-Nov-94 08:49:37 GMT", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Sun Nov  6 08:49:37 1994", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("  Sun, 06 Nov 1994 08:49:37 GMT  ", datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)),
        ("Thursday, 02-May-24 08:00:00 GMT", datetime(2024, 5, 2, 8, 0, tzinfo=UTC)),
        ("Sun, 06 Nov 1994 08:49:37", None),
        ("Sun, 06 Nov 1994 25:49:37 GMT", None),
        ("1994-11-06T08:49:37Z", None),
        ("", None),
    ],
)
def test_parse_http_date(value: str, expected: datetime | None) -> None:
    assert parse_http_date(value) == expected


def test_cache_headers_minimal() -> None:
    headers = cache_headers('"abc"', datetime(1994, 11, 6, 8, 49, 37, 999, tzinfo=UTC))
    assert headers == {
        "ETag": '"abc"',
        "Last-Modified": "Sun, 06 Nov 1994 08:49:37 GMT",
        "Cache-Control": "public, max-age=300",
    }


def test_cache_headers_with_links_and_max_age() -> None:
    when = datetime(2024, 5, 2, 11, 0, tzinfo=timezone(timedelta(hours=3)))
    headers = cache_headers(
        "abc", when, max_age=60, hub_url="http://hub.example/", self_url="http://x.example/feeds/all.atom"
    )
    assert headers["ETag"] == '"abc"'
    assert headers["Last-Modified"] == "Thu, 02 May 2024 08:00:00 GMT"
    assert headers["Cache-Control"] == "public, max-age=60"
    assert (
        headers["Link"] == '<http://hub.example/>; rel="hub", <http://x.example/feeds/all.atom>; rel="self"'
    )


def test_cache_headers_only_self_link() -> None:
    headers = cache_headers('W/"abc"', LAST_MODIFIED, self_url="http://x.example/f.rss")
    assert headers["ETag"] == 'W/"abc"'
    assert headers["Link"] == '<http://x.example/f.rss>; rel="self"'


def test_headers_round_trip_through_conditional_get() -> None:
    headers = cache_headers(ETAG, LAST_MODIFIED)
    assert is_not_modified({"If-None-Match": headers["ETag"]}, ETAG, LAST_MODIFIED)
    assert is_not_modified({"If-Modified-Since": headers["Last-Modified"]}, ETAG, LAST_MODIFIED)
    assert parse_http_date(format_http_date(LAST_MODIFIED)) == LAST_MODIFIED


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "identity"),
        ("", "identity"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("gzip, deflate, br", "br"),
        ("br;q=0.5, gzip", "gzip"),
        ("GZIP;Q=0.8", "gzip"),
        ("gzip;q=0", "identity"),
        ("*", "br"),
        ("*;q=0", "identity"),
        ("br;q=0, *", "gzip"),
        ("deflate, identity", "identity"),
        ("gzip;q=bogus", "identity"),
    ],
)
def test_choose_encoding(accept: str | None, expected: str) -> None:
    assert choose_encoding(accept) == expected


def test_choose_encoding_only_offers_what_is_available() -> None:
    assert choose_encoding("br, gzip", ("gzip",)) == "gzip"
    assert choose_encoding("br", ("gzip",)) == "identity"


def test_variant_etag_is_distinct_per_coding_and_still_matches_itself() -> None:
    assert variant_etag('"abc"', "identity") == '"abc"'
    assert variant_etag('"abc"', "gzip") == '"abc-gzip"'
    assert variant_etag("abc", "br") == '"abc-br"'
    assert etag_matches('W/"abc-gzip"', variant_etag('"abc"', "gzip"))
    assert not etag_matches('"abc"', variant_etag('"abc"', "gzip"))
