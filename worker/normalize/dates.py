"""Date parsing for metadata (ISO 8601, RFC 2822, epoch) and for human date lines in several languages.

A value that carries no time of day (``2019-03-06``, ``6. März 2019``) is a *date*: it is kept as that
calendar day (midnight UTC of the same day, flagged date-only by :func:`has_time` being False) and never
shifted by a time-zone conversion, which would move it to the day before for every zone east of UTC.
"""

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

_MONTH_NAMES: dict[int, tuple[str, ...]] = {
    1: (
        "january",
        "jan",
        "januar",
        "jänner",
        "janvier",
        "janv",
        "enero",
        "ene",
        "gennaio",
        "genn",
        "gen",
        "ianuarie",
        "ian",
        "janeiro",
        "januari",
        "يناير",
        "كانون الثاني",
        "جانفي",
    ),
    2: (
        "february",
        "feb",
        "februar",
        "feber",
        "février",
        "fevrier",
        "févr",
        "fevr",
        "febrero",
        "febbraio",
        "februarie",
        "fevereiro",
        "fev",
        "februari",
        "فبراير",
        "شباط",
        "فيفري",
    ),
    3: (
        "march",
        "mar",
        "märz",
        "maerz",
        "mars",
        "marzo",
        "martie",
        "março",
        "marco",
        "maart",
        "mrt",
        "مارس",
        "آذار",
    ),
    4: (
        "april",
        "apr",
        "avril",
        "avr",
        "abril",
        "abr",
        "aprile",
        "aprilie",
        "أبريل",
        "ابريل",
        "نيسان",
        "أفريل",
    ),
    5: ("may", "mai", "mayo", "maggio", "magg", "maio", "mei", "مايو", "أيار", "ماي"),
    6: (
        "june",
        "jun",
        "juni",
        "juin",
        "junio",
        "giugno",
        "giu",
        "iunie",
        "iun",
        "junho",
        "يونيو",
        "حزيران",
        "جوان",
    ),
    7: (
        "july",
        "jul",
        "juli",
        "juillet",
        "juil",
        "julio",
        "luglio",
        "lug",
        "iulie",
        "iul",
        "julho",
        "يوليو",
        "تموز",
        "جويلية",
    ),
    8: (
        "august",
        "aug",
        "août",
        "aout",
        "agosto",
        "ago",
        "augusti",
        "augustus",
        "أغسطس",
        "اغسطس",
        "آب",
        "أوت",
    ),
    9: (
        "september",
        "sept",
        "sep",
        "septembre",
        "septiembre",
        "settembre",
        "sett",
        "set",
        "septembrie",
        "setembro",
        "سبتمبر",
        "أيلول",
    ),
    10: (
        "october",
        "oct",
        "oktober",
        "okt",
        "octobre",
        "octubre",
        "ottobre",
        "ott",
        "octombrie",
        "outubro",
        "out",
        "أكتوبر",
        "اكتوبر",
        "تشرين الأول",
    ),
    11: (
        "november",
        "nov",
        "novembre",
        "noviembre",
        "noiembrie",
        "noi",
        "novembro",
        "نوفمبر",
        "تشرين الثاني",
    ),
    12: (
        "december",
        "dec",
        "dezember",
        "dez",
        "décembre",
        "decembre",
        "déc",
        "diciembre",
        "dic",
        "dicembre",
        "decembrie",
        "dezembro",
        "ديسمبر",
        "كانون الأول",
    ),
}
MONTHS = {name: number for number, names in _MONTH_NAMES.items() for name in names}
_MONTH = "(" + "|".join(re.escape(m) for m in sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_ORD = r"(?:st|nd|rd|th|er|º|°|\.)?"
_NB = r"(?<![\w.])"  # not inside a longer number or word
_ISO_DATE = re.compile(rf"{_NB}(\d{{4}})[-/.](\d{{1,2}})[-/.](\d{{1,2}})(?!\d)")
_DMY = re.compile(
    rf"{_NB}(\d{{1,2}}){_ORD}\s*(?:of\s+|de\s+|-\s*)?{_MONTH}(?![^\W\d_]),?\s*(?:de\s+|-\s*)?(\d{{4}})(?!\d)",
    re.I,
)
_MDY = re.compile(rf"(?<![^\W\d_]){_MONTH}\s+(\d{{1,2}}){_ORD},?\s+(\d{{4}})(?!\d)", re.I)
_NUMERIC = re.compile(rf"{_NB}(\d{{1,2}})([./])(\d{{1,2}})\2(\d{{4}})(?!\d)")
_URL_DATE = re.compile(r"/((?:19|20)\d\d)[/-]?(0[1-9]|1[0-2])[/-]?(0[1-9]|[12]\d|3[01])(?:/|[-_]|\.html?|$)")
_DIGITS = re.compile(r"\d\d")
_YEAR = re.compile(r"(?<!\d)(19|20)\d\d(?!\d)")
_EPOCH = re.compile(r"^\d{10}(?:\d{3})?$")
_TIME = re.compile(r"\d{1,2}:\d{2}|T\d{2}")


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


def _numeric(match: re.Match[str]) -> datetime | None:
    first, second, year = int(match.group(1)), int(match.group(3)), int(match.group(4))
    if match.group(2) == ".":
        return _make(year, second, first)  # dotted dates are day-first wherever they are written
    if first > 12:
        return _make(year, second, first)
    if second > 12:
        return _make(year, first, second)
    return None  # 03/06/2019 is March or June depending on the country: no guess


def find_date(text: str) -> tuple[datetime, tuple[int, int]] | None:
    """Find the first human-written date in text; return it (UTC midnight of that day) and its span."""
    if not _DIGITS.search(text):
        return None
    found: list[tuple[int, datetime, tuple[int, int]]] = []

    def first(pattern: re.Pattern[str], build: object) -> None:
        for match in pattern.finditer(text):
            value = build(match)  # type: ignore[operator]
            if value:
                found.append((match.start(), value, match.span()))
                return

    first(_ISO_DATE, lambda m: _make(int(m.group(1)), int(m.group(2)), int(m.group(3))))
    first(_DMY, lambda m: _make(int(m.group(3)), MONTHS[m.group(2).lower()], int(m.group(1))))
    first(_MDY, lambda m: _make(int(m.group(3)), MONTHS[m.group(1).lower()], int(m.group(2))))
    first(_NUMERIC, _numeric)
    if not found:
        return None
    _, value, span = min(found, key=lambda item: item[0])
    return value, span


def date_in_url(url: str) -> datetime | None:
    """A publication date written into the article's path (``/2019/03/06/slug``, ``/20190306-slug``)."""
    match = _URL_DATE.search(url)
    return _make(int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


def has_time(value: str | None) -> bool:
    """True when a date string carries a time of day (False for a date-only value such as ``2019-03-06``)."""
    return bool(value) and (bool(_TIME.search(value or "")) or bool(_EPOCH.match((value or "").strip())))


def _day(value: datetime | None) -> datetime | None:
    """The calendar day as written, as midnight UTC: no time-zone shift for a date-only value."""
    return _make(value.year, value.month, value.day) if value else None


def parse_datetime(value: str | None) -> datetime | None:
    """Parse a machine-readable date (ISO 8601, RFC 2822, epoch seconds, or a human date) to aware UTC.

    A date-only value gives midnight UTC of that same day (see the module docstring).
    """
    if not value:
        return None
    value = value.strip()
    if not value or len(value) > 100:
        return None
    if _EPOCH.match(value):
        return _sane(datetime.fromtimestamp(int(value[:10]), UTC))
    parsed = _parse(value)
    if parsed is not None and not has_time(value):
        return _day(parsed)
    return parsed


def _parse(value: str) -> datetime | None:
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return _sane(datetime.fromisoformat(iso))
    except ValueError:
        pass
    if not _YEAR.search(value):
        return None
    human = find_date(value)
    if human is not None and not has_time(value):
        return human[0]
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
    return human[0] if human else None
