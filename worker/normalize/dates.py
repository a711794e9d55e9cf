"""Date parsing for article metadata (ISO 8601, RFC 2822) and for human date lines ("6th March 2019")."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

try:
    from dateutil import parser as _dateutil_parser
except ImportError:  # pragma: no cover - dateutil arrives with celery, but stay usable without it
    _dateutil_parser = None

_MIN_YEAR = 1970
_MAX_YEAR = 2100
# dateutil fills missing fields from this default rather than from "today", which keeps parsing pure.
_DEFAULT = datetime(_MIN_YEAR, 1, 1)

MONTHS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "mar": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
_MONTH = "(" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_ORD = r"(?:st|nd|rd|th)?"
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DMY = re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?{_MONTH},?\s+(\d{{4}})\b", re.I)
_MDY = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}){_ORD},?\s+(\d{{4}})\b", re.I)
_DOTTED = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(\d{4})\b")
_YEAR = re.compile(r"(?<!\d)(19|20)\d\d(?!\d)")
_EPOCH = re.compile(r"^\d{10}(?:\d{3})?$")


def to_utc(value: datetime) -> datetime:
    """Make a datetime timezone-aware UTC; naive values are taken to be UTC already."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _sane(value: datetime | None) -> datetime | None:
    if value is None or not (_MIN_YEAR <= value.year <= _MAX_YEAR):
        return None
    return to_utc(value)


def _make(year: int, month: int, day: int) -> datetime | None:
    try:
        return _sane(datetime(year, month, day))
    except ValueError:
        return None


def find_date(text: str) -> tuple[datetime, tuple[int, int]] | None:
    """Find the first human-written date in text; return it (UTC midnight) and its span."""
    found: list[tuple[int, datetime, tuple[int, int]]] = []
    for match in _ISO_DATE.finditer(text):
        value = _make(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        if value:
            found.append((match.start(), value, match.span()))
            break
    for match in _DMY.finditer(text):
        value = _make(int(match.group(3)), MONTHS[match.group(2).lower()], int(match.group(1)))
        if value:
            found.append((match.start(), value, match.span()))
            break
    for match in _MDY.finditer(text):
        value = _make(int(match.group(3)), MONTHS[match.group(1).lower()], int(match.group(2)))
        if value:
            found.append((match.start(), value, match.span()))
            break
    for match in _DOTTED.finditer(text):
        value = _make(int(match.group(3)), int(match.group(2)), int(match.group(1)))
        if value:
            found.append((match.start(), value, match.span()))
            break
    if not found:
        return None
    _, value, span = min(found, key=lambda item: item[0])
    return value, span


def parse_datetime(value: str | None) -> datetime | None:
    """Parse a machine-readable date (ISO 8601, RFC 2822, epoch seconds, or a human date) to aware UTC."""
    if not value:
        return None
    value = value.strip()
    if not value or len(value) > 100:
        return None
    if _EPOCH.match(value):
        seconds = int(value[:10])
        return _sane(datetime.fromtimestamp(seconds, UTC))
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return _sane(datetime.fromisoformat(iso))
    except ValueError:
        pass
    if not _YEAR.search(value):
        return None
    if _dateutil_parser is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return _sane(_dateutil_parser.parse(value, default=_DEFAULT))
            except (ValueError, OverflowError, TypeError, LookupError):
                pass
    try:
        return _sane(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        pass
    human = find_date(value)
    return human[0] if human else None
