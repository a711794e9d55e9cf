"""Conditional GET and caching headers for serving feeds (RFC 9110 §13, §8.8).

Pure functions over plain mappings, so any web framework can use them:
:func:`is_not_modified` decides between 200 and 304, :func:`cache_headers` builds the
validators and the ``Link`` header (WebSub discovery) to send with either,
:func:`choose_encoding` negotiates ``Accept-Encoding`` (RFC 9110 §12.5.3),
:func:`variant_etag` names each encoded representation's own entity-tag and :func:`wants_page`
tells a browser (which gets an RSS or Atom feed as ``application/xml``, so that its XSL stylesheet
applies) from a feed reader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
_TIME = r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"
_MONTH = r"(?P<month>[A-Za-z]{3})"
# The three HTTP-date forms a recipient must accept (RFC 9110 §5.6.7).
_IMF_FIXDATE = re.compile(rf"^[A-Za-z]{{3}}, (?P<day>\d\d) {_MONTH} (?P<year>\d{{4}}) {_TIME} GMT$")
_RFC850 = re.compile(rf"^[A-Za-z]{{6,9}}, (?P<day>\d\d)-{_MONTH}-(?P<year>\d\d) {_TIME} GMT$")
_ASCTIME = re.compile(rf"^[A-Za-z]{{3}} {_MONTH} (?P<day>[ \d]\d) {_TIME} (?P<year>\d{{4}})$")
_ENTITY_TAG = re.compile(r'\s*(?:W/)?"[^"]*"\s*(?:,|$)')


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_http_date(value: str) -> datetime | None:
    """Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime) into aware UTC; ``None`` if invalid."""
    text = value.strip()
    for pattern in (_IMF_FIXDATE, _RFC850, _ASCTIME):
        match = pattern.match(text)
        if match:
            break
    else:
        return None
    month = _MONTHS.get(match["month"].lower())
    if month is None:
        return None
    year = int(match["year"])
    if pattern is _RFC850:
        # RFC 9110 pivots two-digit years on the current date; a fixed pivot keeps this pure and
        # is right for every date an HTTP client of this century would send.
        year += 2000 if year < 70 else 1900
    try:
        return datetime(
            year,
            month,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def format_http_date(value: datetime) -> str:
    """``value`` as an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``); naive means UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _opaque_tag(tag: str) -> str:
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def parse_entity_tags(value: str) -> list[str] | None:
    """The entity-tags of an ``If-None-Match``/``If-Match`` value, ``["*"]`` for a star.

    Tags keep their quotes and any ``W/`` prefix. ``None`` if the value is not a valid list.
    """
    text = value.strip()
    if text == "*":
        return ["*"]
    tags: list[str] = []
    pos = 0
    while pos < len(text):
        match = _ENTITY_TAG.match(text, pos)
        if not match:
            return None
        tags.append(match.group(0).strip().rstrip(",").strip())
        pos = match.end()
        # Empty list elements (``"a", , "b"``) are allowed by the list syntax.
        while pos < len(text) and text[pos] in ", \t":
            pos += 1
    return tags


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether ``etag`` is in ``if_none_match`` by weak comparison (``*`` matches anything)."""
    tags = parse_entity_tags(if_none_match)
    if not tags:
        return False
    if tags == ["*"]:
        return True
    ours = _opaque_tag(etag)
    if not ours.startswith('"'):
        ours = f'"{ours}"'
    return any(_opaque_tag(tag) == ours for tag in tags)


def is_not_modified(request_headers: Mapping[str, str], etag: str, last_modified: datetime) -> bool:
    """Whether a GET/HEAD with ``request_headers`` should be answered ``304 Not Modified``.

    ``If-None-Match`` (weak comparison, lists, ``*``) decides when present; only without it is
    ``If-Modified-Since`` consulted, at one-second precision, and an unparsable date is ignored.
    """
    if_none_match = _header(request_headers, "If-None-Match")
    if if_none_match is not None and if_none_match.strip():
        return etag_matches(if_none_match, etag)
    if_modified_since = _header(request_headers, "If-Modified-Since")
    if if_modified_since is None:
        return False
    since = parse_http_date(if_modified_since)
    if since is None:
        return False
    if last_modified.tzinfo is None:
        last_modified = last_modified.replace(tzinfo=UTC)
    return last_modified.astimezone(UTC).replace(microsecond=0) <= since


def cache_headers(
    etag: str,
    last_modified: datetime,
    max_age: int = 300,
    hub_url: str | None = None,
    self_url: str | None = None,
) -> dict[str, str]:
    """Response headers for a feed: ``ETag``, ``Last-Modified``, ``Cache-Control`` and ``Link``.

    ``Link`` advertises the WebSub hub and the topic (self) URL when they are given.
    """
    if not etag.startswith(('"', 'W/"')):
        etag = f'"{etag}"'
    headers = {
        "ETag": etag,
        "Last-Modified": format_http_date(last_modified),
        "Cache-Control": f"public, max-age={max(0, int(max_age))}",
    }
    links = []
    if hub_url:
        links.append(f'<{hub_url}>; rel="hub"')
    if self_url:
        links.append(f'<{self_url}>; rel="self"')
    if links:
        headers["Link"] = ", ".join(links)
    return headers


# Our preference among the codings a client accepts equally: smallest first.
ENCODING_PREFERENCE = ("br", "gzip")


def _accepted_codings(accept_encoding: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = min(1.0, max(0.0, float(value.strip())))
                except ValueError:
                    weight = 0.0
        if coding == "x-gzip":
            coding = "gzip"
        weights[coding] = weight
    return weights


def choose_encoding(accept_encoding: str | None, available: tuple[str, ...] = ENCODING_PREFERENCE) -> str:
    """The content coding to answer with: one of ``available`` or ``"identity"``.

    The client's highest ``q`` wins, ties going to the order of ``available``; ``*`` stands for
    every coding not named, and ``q=0`` refuses one. No header means identity (RFC 9110 allows any
    coding then, but a client that sends none may not decode any).
    """
    if not accept_encoding:
        return "identity"
    weights = _accepted_codings(accept_encoding)
    star = weights.get("*")
    best, best_q = "identity", 0.0
    for coding in available:
        q = weights.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    return best


# What a browser gets an RSS or Atom feed as: the same bytes, a type it renders through the feed's
# <?xml-stylesheet?> (Chromium shows application/rss+xml as plain text and applies no XSL to it).
PAGE_CONTENT_TYPE = "application/xml; charset=utf-8"
# Naming one of these in Accept marks a feed reader, whatever else it accepts.
FEED_MEDIA_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json")


def _weights(header: str) -> dict[str, float]:
    """``value -> q`` of a comma-separated header with ``;q=`` weights (Accept, Accept-Encoding)."""
    weights: dict[str, float] = {}
    for part in header.split(","):
        value, _, params = part.strip().partition(";")
        value = value.strip().lower()
        if not value:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, number = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = min(1.0, max(0.0, float(number.strip())))
                except ValueError:
                    weight = 0.0
        weights[value] = weight
    return weights


def wants_page(accept: str | None) -> bool:
    """Whether an ``Accept`` header is a browser's, asking for a page rather than a feed.

    Browsers send ``text/html,application/xhtml+xml,application/xml;q=0.9,...``; feed readers name
    ``application/rss+xml`` or ``application/atom+xml``, or send ``*/*`` or nothing. So: ``text/html``
    (or XHTML) acceptable and no feed media type named.
    """
    if not accept:
        return False
    weights = _weights(accept)
    if any(weights.get(media, 0.0) > 0 for media in FEED_MEDIA_TYPES):
        return False
    return weights.get("text/html", 0.0) > 0 or weights.get("application/xhtml+xml", 0.0) > 0


def page_etag(etag: str) -> str:
    """The entity-tag of a feed's browser representation (the same bytes as another media type)."""
    if not etag.startswith('"'):
        etag = f'"{etag}"'
    return f'{etag[:-1]}-page"'


def variant_etag(etag: str, encoding: str) -> str:
    """The strong entity-tag of ``etag``'s representation in ``encoding`` (RFC 9110 §8.8.3.3).

    Each coding has different bytes, so each needs its own tag: ``"abc"`` → ``"abc-gzip"``.
    """
    if not etag.startswith('"'):
        etag = f'"{etag}"'
    return etag if encoding == "identity" else f'{etag[:-1]}-{encoding}"'


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date); ``None`` if invalid."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    when = parse_http_date(text)
    if when is None:
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())
