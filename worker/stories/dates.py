"""The days an article is *about*: its publication day and the event dates its title and lead state.

A write-up published weeks after the event says so in its lead ("In the end of January, ... established
a connection"); comparing publication days alone keeps it away from the press release of the day. So two
articles may be the same story when any of their days are within the window (:func:`days_apart`).

Pure and cheap: one pass of one precompiled regex over the title and the first two sentences of the
body (at most ~300 characters). What it reads, in en, ro, de, fr, es, pl, tr, ar, it, pt and nl:

- full dates: ``28 January 2019``, ``January 28, 2019``, ``28.01.2019``, ``2019-01-28``,
  ``28/01/2019`` (slashed and dashed dates are day-first; month-first only where day-first is
  impossible, ``01/28/2019``); day ranges ``6-7 April``, ``6 and 7 April``;
- day and month without a year: the year whose date is nearest the publication day
  (``28 December`` in an article of 3 January is the December before);
- a month with a year, or a month after a qualifier: ``in January`` (the whole month), ``end of
  January`` / ``Ende Januar`` / ``pod koniec stycznia`` / ``أواخر كانون الثاني`` / ``Ocak sonunda``
  (days 21 to the end), beginning (1-10), middle (11-20); a bare month name is never read alone
  (``May``, ``mai``, ``mars`` are also words);
- Arabic month names of both families (``يناير`` and ``كانون الثاني``) and Arabic-Indic digits.

A year alone is never an event date, and a date more than a year before or after the publication day is
background ("founded in March 2015"), not the event: it is left out. Weekdays and relative words
("yesterday", "last week") are not read.
"""

# Month names and qualifiers in eleven languages: their letters are meant, not look-alikes of Latin ones.
# ruff: noqa: RUF001, RUF003

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

__all__ = ["days_apart", "event_days", "lead_text"]

DayRange = tuple[date, date]

# How far from the publication day a stated date may be and still be what the article reports.
HORIZON = timedelta(days=366)
LEAD_CHARS = 300
LEAD_SENTENCES = 2

# Month names after folding (lower case; Arabic alef forms folded to ا, diacritics and tatweel removed).
# Abbreviations count only next to a day or a year.
_MONTH_NAMES: dict[int, str] = {
    1: "january jan januar jänner janner janvier janv enero ene gennaio genn ianuarie ian janeiro "
    "januari styczeń styczen stycznia styczniu ocak يناير جانفي كانون_الثاني كانون_ثاني",
    2: "february feb februar feber février fevrier févr fevr febrero febbraio februarie fevereiro fev "
    "februari luty lutego lutym şubat subat فبراير فيفري شباط",
    3: "march mar märz maerz marz mars marzo martie março marco maart mrt marzec marca marcu mart مارس اذار",
    4: "april apr avril avr abril abr aprile aprilie kwiecień kwiecien kwietnia kwietniu nisan "
    "ابريل افريل نيسان",
    5: "may mai mayo maggio magg maio mei maj maja maju mayıs mayis مايو ماي ايار",
    6: "june jun juni juin junio giugno giu iunie iun junho czerwiec czerwca czerwcu haziran "
    "يونيو يونيه جوان حزيران",
    7: "july jul juli juillet juil julio luglio lug iulie iul julho lipiec lipca lipcu temmuz "
    "يوليو يوليه جويلية تموز",
    8: "august aug août aout agosto ago augusti augustus sierpień sierpien sierpnia sierpniu ağustos "
    "agustos اغسطس اوت اب",
    9: "september sept sep septembre septiembre setiembre settembre sett septembrie setembro "
    "wrzesień wrzesien września wrzesnia wrześniu eylül eylul سبتمبر ايلول",
    10: "october oct oktober okt octobre octubre ottobre ott octombrie outubro październik "
    "pazdziernik października pazdziernika październiku ekim اكتوبر تشرين_الاول تشرين_اول",
    11: "november nov novembre noviembre noiembrie novembro listopad listopada listopadzie kasım "
    "kasim نوفمبر تشرين_الثاني تشرين_ثاني",
    12: "december dec dezember dez décembre decembre déc diciembre dic dicembre decembrie dezembro "
    "grudzień grudzien grudnia grudniu aralık aralik ديسمبر كانون_الاول كانون_اول",
}
MONTHS: dict[str, int] = {
    name.replace("_", " "): number for number, names in _MONTH_NAMES.items() for name in names.split()
}
# Read without a day or year only after a qualifier, and never these (also ordinary words or short
# forms): "may" in lower case is handled in _month_range.
_ABBREVIATIONS = frozenset(
    "jan janv ene genn gen ian feb févr fevr fev mar mrt apr avr abr jun giu iun jul juil lug iul aug "
    "ago sept sep sett oct okt ott nov dec dez déc dic".split()
)
# Qualifiers before a month: which part of the month they mean.
_END, _START, _MID, _WHOLE = "end", "start", "mid", "whole"
_BEFORE: dict[str, tuple[str, ...]] = {
    _END: (
        "the end of",
        "end of",
        "the close of",
        "late",
        "ende",
        "à la fin de",
        "à la fin du mois de",
        "fin de",
        "fin",
        "a finales de",
        "finales de",
        "a fines de",
        "fines de",
        "al final de",
        "final de",
        "alla fine di",
        "fine di",
        "fine",
        "no final de",
        "fim de",
        "fins de",
        "finais de",
        "sfârșitul lunii",
        "sfârşitul lunii",
        "sfarsitul lunii",
        "sfârșitul lui",
        "sfârşitul lui",
        "finalul lunii",
        "pod koniec",
        "koniec",
        "końcem",
        "koncem",
        "eind",
        "einde",
        "eind van",
        "اواخر",
        "باواخر",
        "نهاية",
        "بنهاية",
        "اخر",
        "اواخر شهر",
        "نهاية شهر",
    ),
    _START: (
        "the beginning of",
        "beginning of",
        "the start of",
        "start of",
        "early",
        "anfang",
        "beginn",
        "début",
        "debut",
        "début de",
        "au début de",
        "a principios de",
        "principios de",
        "a comienzos de",
        "comienzos de",
        "inicios de",
        "all'inizio di",
        "inizio di",
        "inizio",
        "primi di",
        "no início de",
        "início de",
        "inicio de",
        "começo de",
        "no começo de",
        "începutul lunii",
        "inceputul lunii",
        "începutul lui",
        "na początku",
        "początek",
        "początkiem",
        "poczatek",
        "begin",
        "اوائل",
        "مطلع",
        "بداية",
        "ببداية",
        "اوائل شهر",
        "مطلع شهر",
        "بداية شهر",
    ),
    _MID: (
        "the middle of",
        "middle of",
        "mid-",
        "mid",
        "mitte",
        "mi-",
        "milieu de",
        "à la mi-",
        "a mediados de",
        "mediados de",
        "a metà",
        "metà di",
        "metà",
        "em meados de",
        "meados de",
        "mijlocul lunii",
        "mijlocul lui",
        "w połowie",
        "połowa",
        "polowa",
        "half",
        "medio",
        "midden",
        "منتصف",
        "اواسط",
        "منتصف شهر",
    ),
    _WHOLE: (
        "in",
        "during",
        "throughout",
        "im",
        "im laufe des",
        "en",
        "au mois de",
        "courant",
        "durante",
        "a",
        "nel mese di",
        "nel",
        "em",
        "no mês de",
        "în",
        "în luna",
        "in luna",
        "luna",
        "w",
        "we",
        "في",
        "خلال",
        "في شهر",
        "خلال شهر",
        "شهر",
    ),
}
# Turkish puts the qualifier after the month: "Ocak sonunda", "Ocak ayında", "Mart'ta".
_AFTER: dict[str, tuple[str, ...]] = {
    _END: ("sonunda", "sonu", "sonlarında", "ayı sonunda", "ayının sonunda", "ayı sonu"),
    _START: ("başında", "başı", "başlarında", "ayı başında", "ayının başında"),
    _MID: ("ortasında", "ortası", "ortalarında", "ayı ortasında", "ayının ortasında"),
    _WHOLE: ("ayında", "ayı içinde", "'da", "'de", "'ta", "'te", "’da", "’de", "’ta", "’te"),
}
_QUALIFIER = {phrase: kind for kind, phrases in _BEFORE.items() for phrase in phrases}
_POST_QUALIFIER = {phrase: kind for kind, phrases in _AFTER.items() for phrase in phrases}


def _alternation(phrases: Iterable[str]) -> str:
    """A regex matching any of ``phrases`` (the longest first), built as a trie so that the engine tries
    a handful of characters at each position instead of every phrase (6x faster on a typical lead)."""
    trie: dict[str, Any] = {}
    for phrase in phrases:
        node = trie
        for char in phrase.lower():
            node = node.setdefault(char, {})
        node[""] = {}
    return _trie_pattern(trie)


def _trie_pattern(node: dict[str, Any]) -> str:
    ends = "" in node
    branches = []
    for char in sorted(k for k in node if k):
        piece = r"\s+" if char == " " else re.escape(char)
        branches.append(piece + _trie_pattern(node[char]))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 and not ends else "(?:" + "|".join(branches) + ")"
    return body + "?" if ends else body


_LETTER_BEFORE = r"(?<![^\W\d_])"
_LETTER_AFTER = r"(?![^\W\d_])"
_NAME = _alternation(MONTHS)


def _month(group: str) -> str:
    """A month name (a capture group of its own), an optional dot, and an optional second name of the
    other Arabic family: ``كانون الثاني/يناير``, ``يناير (كانون الثاني)``."""
    return (
        rf"{_LETTER_BEFORE}(?P<{group}>{_NAME}){_LETTER_AFTER}\.?"
        rf"(?:\s*[/(]\s*(?:{_NAME}){_LETTER_AFTER}\)?)?"
    )


_ORD = r"(?:st|nd|rd|th|er|e|º|°|\.)?"
_DAY_JOIN = r"(?:-|–|—|/|&|and|to|și|şi|si|und|bis|et|au|y|al|a|e|i|do|ve|en|tot|و|الى|إلى)"
_OF = r"(?:of\s+|de\s+|del\s+|-\s*|من\s+)?"
_YEAR_JOIN = r"(?:,?\s*(?:de\s+|del\s+)?)"
_PATTERN = re.compile(
    "|".join(
        (
            # 2019-01-28, 2019/01/28, 2019.01.28
            r"(?<![\d.])(?P<iso_y>\d{4})(?P<iso_sep>[-/.])(?P<iso_m>\d{1,2})(?P=iso_sep)(?P<iso_d>\d{1,2})(?!\d)",
            # 28.01.2019, 28/01/2019, 01/28/2019
            r"(?<![\d.])(?P<num_a>\d{1,2})(?P<num_sep>[-/.])(?P<num_b>\d{1,2})(?P=num_sep)(?P<num_y>\d{4})(?!\d)",
            # 28 January 2019, 28. Januar, 6-7 April, 6 and 7 April, 28 de enero de 2019, 28 كانون الثاني
            rf"(?<![\d.,])(?:(?P<dmy_d0>\d{{1,2}}){_ORD}\s*{_DAY_JOIN}\s*)?(?P<dmy_d>\d{{1,2}}){_ORD}\s*{_OF}"
            rf"{_month('dmy_m')}(?:{_YEAR_JOIN}(?P<dmy_y>\d{{4}})(?!\d))?",
            # January 28, 2019; March 6-7
            rf"{_month('mdy_m')}\s*(?P<mdy_d>\d{{1,2}}){_ORD}(?:\s*(?:-|–)\s*(?P<mdy_d2>\d{{1,2}}))?(?!\d)"
            rf"(?:,?\s+(?P<mdy_y>\d{{4}})(?!\d))?",
            # Ocak sonunda, Mart'ta, Ocak 2019 ayında
            rf"{_month('tr_m')}(?:\s+(?P<tr_y>\d{{4}}))?(?:\s+|(?=['’]))(?P<tr_q>{_alternation(_POST_QUALIFIER)})"
            rf"{_LETTER_AFTER}",
            # January 2019, enero de 2019
            rf"{_month('my_m')}{_YEAR_JOIN}\s*(?P<my_y>\d{{4}})(?!\d)",
            # in the end of January, Ende Januar, pod koniec stycznia, أواخر كانون الثاني [2019]
            rf"{_LETTER_BEFORE}(?P<q>{_alternation(_QUALIFIER)})(?:(?<=-)\s*|\s+)"
            rf"(?:(?:the\s+)?month\s+of\s+|lunii\s+|lui\s+|del\s+mes\s+de\s+|du\s+mois\s+de\s+|"
            rf"do\s+mês\s+de\s+|شهر\s+)?{_month('q_m')}(?:{_YEAR_JOIN}\s*(?P<q_y>\d{{4}})(?!\d))?",
        )
    ),
    re.IGNORECASE,
)

# Folding: Arabic-Indic and Persian digits to ASCII, alef forms to ا, diacritics and tatweel removed.
_FOLD = str.maketrans(
    {
        **{chr(0x0660 + i): str(i) for i in range(10)},
        **{chr(0x06F0 + i): str(i) for i in range(10)},
        "أ": "ا",
        "إ": "ا",
        "آ": "ا",
        "ٱ": "ا",
        "\u0640": None,
        **{chr(c): None for c in range(0x064B, 0x0653)},
    }
)
_SENTENCE_END = re.compile(r"(?<=[^\W\d_]{2}[.!?؟])\s+(?=[\"“„«'(]?[^\W\d_])")


def lead_text(title: str, body: str, sentences: int = LEAD_SENTENCES, chars: int = LEAD_CHARS) -> str:
    """The title and the first ``sentences`` sentences of the body, at most about ``chars`` characters
    (cut after a whole word)."""
    head = body[: chars + 40]
    ends = 0
    for n, match in enumerate(_SENTENCE_END.finditer(head), 1):
        if n == sentences:
            ends = match.start()
            break
    if ends:
        head = head[:ends]
    if len(head) > chars:
        cut = head.find(" ", chars)
        head = head[: cut if cut != -1 else len(head)]
    return f"{title}\n{head}"


def event_days(
    title: str,
    lead: str,
    published: datetime | None,
    *,
    sentences: int = LEAD_SENTENCES,
    chars: int = LEAD_CHARS,
    whole_months: bool = True,
) -> list[DayRange]:
    """The day ranges the article is about: its publication day (when known) and the dates stated in
    its title and the first ``sentences`` sentences of ``lead`` (the body; at most ~``chars``).

    ``whole_months=False`` leaves out a month stated as a whole ("in May", "January 2019"), keeping
    days and parts of months ("end of January"): a lead's "in May" is often a look back at an earlier
    event ("avenged his defeat in May"); bench/story_dates.py measures both."""
    day = published.date() if published is not None else None
    found: set[DayRange] = set()
    if day is not None:
        found.add((day, day))
    text = lead_text(title, lead, sentences, chars).translate(_FOLD)
    for match in _PATTERN.finditer(text):
        stated = _range(match, day)
        if stated is None or (not whole_months and _is_whole_month(stated)):
            continue
        if day is not None and (stated[1] < day - HORIZON or stated[0] > day + HORIZON):
            continue  # background, not the event
        found.add(stated)
    return sorted(found)


def days_apart(a: list[DayRange], b: list[DayRange]) -> float | None:
    """The fewest days between any range of ``a`` and any of ``b`` (0 when two overlap); None when
    either has none."""
    if not a or not b:
        return None
    best: int | None = None
    for a_start, a_end in a:
        for b_start, b_end in b:
            gap = max(0, (b_start - a_end).days, (a_start - b_end).days)
            if best is None or gap < best:
                best = gap
                if gap == 0:
                    return 0.0
    return float(best) if best is not None else None


def _range(match: re.Match[str], published: date | None) -> DayRange | None:
    g = match.groupdict()
    if g["iso_y"]:
        return _one(int(g["iso_y"]), int(g["iso_m"]), int(g["iso_d"]))
    if g["num_y"]:
        first, second, year = int(g["num_a"]), int(g["num_b"]), int(g["num_y"])
        if second > 12 and first <= 12:  # 01/28/2019: only month-first makes sense
            return _one(year, first, second)
        return _one(year, second, first)  # day-first wherever a day-first reading exists
    if g["dmy_m"]:
        month = _number(g["dmy_m"])
        first = int(g["dmy_d0"]) if g["dmy_d0"] else int(g["dmy_d"])
        return _days(g["dmy_y"], month, first, int(g["dmy_d"]), published)
    if g["mdy_m"]:
        if g["mdy_m"] == "may" or g["mdy_m"] == "mar":  # "may 10 people", Spanish "mar" (sea)
            return None
        month = _number(g["mdy_m"])
        last = int(g["mdy_d2"]) if g["mdy_d2"] else int(g["mdy_d"])
        return _days(g["mdy_y"], month, int(g["mdy_d"]), last, published)
    if g["tr_m"]:
        kind = _POST_QUALIFIER.get(_fold_space(g["tr_q"]).lower().replace("’", "'"), _WHOLE)
        return _month_range(g["tr_m"], g["tr_y"], kind, published)
    if g["my_m"]:
        return _month_range(g["my_m"], g["my_y"], _WHOLE, published)
    if g["q_m"]:
        qualifier = _fold_space(g["q"]).lower()
        kind = _QUALIFIER.get(qualifier, _WHOLE)
        if g["q_m"].lower() in _ABBREVIATIONS:
            return None
        if g["q_m"] == "may" or (g["q_m"].lower() == "mai" and qualifier in {"în", "in", "a", "luna"}):
            return None  # "in may be", Romanian "în mai multe" (in more)
        return _month_range(g["q_m"], g["q_y"], kind, published)
    return None  # pragma: no cover - every alternative is handled above


def _is_whole_month(stated: DayRange) -> bool:
    start, end = stated
    return start.day == 1 and start.month == end.month and end.day == monthrange(end.year, end.month)[1]


def _fold_space(text: str) -> str:
    return " ".join(text.split())


def _number(name: str) -> int:
    return MONTHS[_fold_space(name).lower()]


def _one(year: int, month: int, day: int) -> DayRange | None:
    try:
        found = date(year, month, day)
    except ValueError:
        return None
    return found, found


def _days(
    year: str | None, month: int, first: int, last: int, published: date | None, *, to_end: bool = False
) -> DayRange | None:
    """Days ``first``..``last`` of ``month`` (``to_end``: ``last`` is the month's last day); without a
    year, in the year that puts them nearest the publication day."""
    if last < first:
        first, last = last, first
    if year:
        years = [int(year)]
    elif published is not None:
        years = [published.year - 1, published.year, published.year + 1]
    else:
        return None
    best: DayRange | None = None
    for candidate in years:
        try:
            end = monthrange(candidate, month)[1] if to_end else last
            stated = (date(candidate, month, first), date(candidate, month, end))
        except ValueError:
            continue
        if best is None or _distance(stated, published) < _distance(best, published):
            best = stated
    return best


def _month_range(name: str, year: str | None, kind: str, published: date | None) -> DayRange | None:
    first, last = {_END: (21, 28), _START: (1, 10), _MID: (11, 20)}.get(kind, (1, 28))
    return _days(year, _number(name), first, last, published, to_end=kind in (_END, _WHOLE))


def _distance(stated: DayRange, published: date | None) -> int:
    if published is None:
        return 0
    return max(0, (stated[0] - published).days, (published - stated[1]).days)
