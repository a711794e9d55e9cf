"""Language of a page: declared tags first, then a cheap guess from the script and common words."""

from __future__ import annotations

import re
from collections import Counter

_TAG = re.compile(r"^([a-z]{2,3})(?:[-_][a-z0-9]{1,8})*$", re.I)

# Unicode ranges whose script (nearly) names one language; the first match by letter count wins.
_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("ar", "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff"),
    ("he", "\u0590-\u05ff"),
    ("ru", "\u0400-\u04ff"),
    ("el", "\u0370-\u03ff"),
    ("ja", "\u3040-\u30ff"),
    ("ko", "\uac00-\ud7af\u1100-\u11ff"),
    ("zh", "\u4e00-\u9fff"),
    ("th", "\u0e00-\u0e7f"),
    ("hi", "\u0900-\u097f"),
    ("ka", "\u10a0-\u10ff"),
    ("hy", "\u0530-\u058f"),
)
_SCRIPT_RES = tuple((lang, re.compile(f"[{chars}]")) for lang, chars in _SCRIPTS)
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and of to in is that for with was on are as by this it from".split()),
    "ro": frozenset("și si în de la cu pentru este care din pe să sa nu mai sunt fost".split()),
    "fr": frozenset("le la les et des est une dans pour que qui sur pas avec du au".split()),
    "de": frozenset("der die das und ist nicht mit von den zu ein eine auf für sich".split()),
    "es": frozenset("el la los las y que del en por con una para es se como".split()),
    "it": frozenset("il di che e la per un una non sono del della con gli nel".split()),
    "pt": frozenset("o os de que e do da em um uma para com não por são".split()),
    "nl": frozenset("de het een en van is dat op te zijn met voor niet ook".split()),
}
_WORD = re.compile(r"[^\W\d_]+")


def primary_subtag(value: str | None) -> str | None:
    """``"en-US"`` / ``"en_GB"`` → ``"en"``; None for anything that is not a language tag."""
    if not value:
        return None
    value = value.strip().split(",")[0].strip()
    match = _TAG.match(value)
    if not match:
        return None
    lang = match.group(1).lower()
    return None if lang in {"und", "mul", "zxx", "xx"} else lang


def guess_language(text: str) -> str | None:
    """Guess a language from a text sample: a dominant non-Latin script, else frequent function words."""
    sample = text[:20000]
    latin = len(_LATIN.findall(sample))
    best: tuple[int, str] | None = None
    for lang, pattern in _SCRIPT_RES:
        count = len(pattern.findall(sample))
        if count and (best is None or count > best[0]):
            best = (count, lang)
    if best and best[0] >= 20 and best[0] > latin:
        lang = best[1]
        if lang == "zh" and len(_SCRIPT_RES[4][1].findall(sample)) > 0.2 * best[0]:
            return "ja"  # kana mixed with kanji
        return lang
    words = [w.lower() for w in _WORD.findall(sample)]
    if len(words) < 20:
        return None
    counts: Counter[str] = Counter()
    for word in words:
        for lang, stops in _STOPWORDS.items():
            if word in stops:
                counts[lang] += 1
    if not counts:
        return None
    (lang, top), *rest = [*counts.most_common(2), ("", 0)]
    runner_up = rest[0][1]
    if top >= 0.05 * len(words) and top >= 1.5 * runner_up:
        return lang
    return None
