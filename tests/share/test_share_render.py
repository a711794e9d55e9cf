"""render_text: template fields, hashtags and fitting text into a network's limit."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

import pytest

from worker.share import ShareArticle, hashtags, render_text, shorten
from worker.share.base import cut_at_sentence, share_summary

AR_URL = "https://akhbar.example.com/2024/05/01/ماليزيا-اقتصاد"


def arabic_article() -> ShareArticle:
    """An Arabic article with harakat (combining marks) in the title."""
    return ShareArticle(
        article_id=7,
        url=AR_URL,
        title="مُحَمَّد يَفتتح معرض الكتاب الدولي في الرياض بمشاركة واسعة",
        summary="افتتح المعرض أبوابه اليوم بمشاركة أكثر من ألف دار نشر من ثلاثين دولة، "
        "ويستمر عشرة أيام مع برنامج ثقافي حافل.",
        source="akhbar",
        tags=("معرض الكتاب", "الرياض"),
        authors=("سارة علي",),
    )


def test_fills_every_field(article: ShareArticle) -> None:
    template = "{title} | {source} | {category} | {author}\n{summary}\n{tags}\n{url}"
    text = render_text(template, article, None)
    assert text.splitlines() == [
        "Bursa de la București crește pentru a cincea zi consecutiv | stiri-ro | economie | "
        "Ana Popescu, Ion Ionescu",
        article.summary,
        # The category leads the hashtags: it is the article's broadest topic.
        "#economie #Bursa #piațaDeCapital #BET",
        article.url,
    ]


def test_empty_fields_leave_no_stray_blank_lines() -> None:
    bare = ShareArticle(article_id=1, url="https://x.example/a", title="Title")
    assert (
        render_text("{title}\n\n{summary}\n\n{tags}\n\n{url}", bare, None) == "Title\n\nhttps://x.example/a"
    )


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (("climate change", "Climate-Change", "hot Topic"), "#climateChange #hotTopic"),
        (("covid-19",), "#covid_19"),
        (("2024", "#already", "  spaced  out "), "#already #spacedOut"),
        (("C++", "node.js", "economie & finanțe"), "#C #nodeJs #economieFinanțe"),
        (("معرض الكتاب", "الرياض"), "#معرض_الكتاب #الرياض"),
        (("!!!", ""), ""),
    ],
)
def test_hashtags_are_sanitized(tags: tuple[str, ...], expected: str) -> None:
    assert hashtags(tags) == expected


def test_hashtags_keep_combining_marks() -> None:
    assert hashtags(("مُحَمَّد صلاح",)) == "#مُحَمَّد_صلاح"
    # Decomposed input (ș as s + comma below) comes out composed.
    assert hashtags(("Știri din Iași",)) == "#ȘtiriDinIași"


def test_no_limit_returns_everything(article: ShareArticle) -> None:
    text = render_text("{title}\n\n{summary}\n\n{url}", article, None)
    assert article.summary in text and article.url in text


@pytest.mark.parametrize("limit", [300, 200, 140, 120, 100, 90])
def test_limit_is_respected_and_url_kept(article: ShareArticle, limit: int) -> None:
    template = "{title}\n\n{summary}\n\n{tags}\n{url}"
    text = render_text(template, article, limit)
    assert len(text) <= limit
    assert text.endswith(article.url)
    assert article.url in text


def test_summary_is_shortened_before_title(article: ShareArticle) -> None:
    template = "{title}\n\n{summary}\n\n{url}"
    full = render_text(template, article, None)
    text = render_text(template, article, len(full) - 40)
    title, summary, url = text.split("\n\n")
    assert title == article.title
    assert summary.endswith("…") and len(summary) < len(article.summary)
    # Cut at a word boundary: what stays is a prefix made of whole words.
    kept = summary[:-1]
    assert article.summary.startswith(kept)
    assert article.summary[len(kept)] in " ,"
    assert url == article.url


def test_tags_and_small_fields_go_before_the_title_is_cut(article: ShareArticle) -> None:
    template = "{title}\n{summary}\n{tags}\n{source}\n{author}\n{url}"
    limit = len(article.title) + 1 + len(article.url)
    assert render_text(template, article, limit) == f"{article.title}\n{article.url}"


def test_single_newline_templates_do_not_keep_blank_lines(article: ShareArticle) -> None:
    text = render_text(
        "{title}\n{summary}\n{tags}\n{url}", article, len(article.title) + len(article.url) + 1
    )
    assert text == f"{article.title}\n{article.url}"


def test_title_is_shortened_once_summary_is_gone(article: ShareArticle) -> None:
    template = "{title}\n\n{summary}\n\n{url}"
    limit = len(article.url) + 2 + 30
    text = render_text(template, article, limit)
    title, url = text.split("\n\n")
    assert len(text) <= limit
    assert title.endswith("…")
    assert article.title.startswith(title[:-1])
    assert article.title[len(title) - 1] == " "
    assert url == article.url


def test_url_alone_that_does_not_fit_is_an_error(article: ShareArticle) -> None:
    with pytest.raises(ValueError, match="URL"):
        render_text("{title} {url}", article, len(article.url) - 1)


def test_url_alone_at_the_limit_fits(article: ShareArticle) -> None:
    assert render_text("{title} {url}", article, len(article.url)) == article.url


def test_tags_are_dropped_last_first(article: ShareArticle) -> None:
    template = "{tags} {url}"
    text = render_text(template, article, len(article.url) + len(" #economie #Bursa #piațaDeCapital"))
    assert text == "#economie #Bursa #piațaDeCapital " + article.url


def test_counts_code_points_not_bytes() -> None:
    # Every letter here is two UTF-8 bytes: a byte count would cut far too early.
    art = ShareArticle(article_id=3, url="https://x.example/a", title="ăîșțâ " * 10)
    text = render_text("{title} {url}", art, 60)
    assert len(text) <= 60
    assert len(text.encode()) > 60
    assert text.endswith(" https://x.example/a")


def test_arabic_text_is_cut_at_word_boundaries_without_orphaned_marks() -> None:
    art = arabic_article()
    template = "{title}\n{summary}\n{tags}\n{url}"
    for limit in range(len(AR_URL) + 10, len(render_text(template, art, None)) + 1, 7):
        text = render_text(template, art, limit)
        assert len(text) <= limit
        assert text.endswith(AR_URL)
        for line in text.split("\n")[:-1]:
            if line.endswith("…"):
                kept = line[:-1]
                original = art.title if art.title.startswith(kept) else art.summary
                assert kept and original.startswith(kept)
                # A letter is never separated from the marks that follow it.
                assert not unicodedata.combining(original[len(kept)])


def test_weighted_length_hook(article: ShareArticle) -> None:
    # A network that counts every URL as 23 characters, like X.
    def weighted(text: str) -> int:
        return len(text.replace(article.url, "u" * 23))

    text = render_text("{title}\n\n{summary}\n\n{url}", article, 100, length=weighted)
    assert weighted(text) <= 100 < len(text)
    assert text.endswith(article.url)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("one two three", 9, "one two…"),
        ("one two three", 8, "one two…"),
        ("one two three", 7, "one…"),
        ("one, two", 7, "one…"),
        ("unbreakable", 6, "unbre…"),
        ("anything", 1, ""),
        ("anything", 0, ""),
        ("a\u0301b\u0301c\u0301d", 4, "a\u0301…"),
    ],
)
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected
    assert len(shorten(text, limit)) <= max(limit, 0)


@pytest.mark.parametrize("template", ["{title.__class__}", "{0}", "{}", "{title[0]}", "{nope}", "{title"])
def test_bad_templates_are_rejected(article: ShareArticle, template: str) -> None:
    with pytest.raises(ValueError):
        render_text(template, article, None)


def test_format_specs_and_literal_braces_work(article: ShareArticle) -> None:
    assert render_text("{{{source:>10}}} {url}", article, None) == "{  stiri-ro} " + article.url


@pytest.mark.parametrize("limit", [60, 75, 90, 110])
def test_cut_is_as_long_as_the_limit_allows_under_weighted_counts(limit: int) -> None:
    # Every non-ASCII character weighs 2, as CJK does on X.
    def weighted(text: str) -> int:
        return sum(1 if ch.isascii() else 2 for ch in text)

    art = ShareArticle(article_id=5, url="https://x.example/a", title="東京 大阪 名古屋 札幌 福岡 " * 4)
    text = render_text("{title} {url}", art, limit, length=weighted)
    assert weighted(text) <= limit
    kept = text.removesuffix(" https://x.example/a").removesuffix("…")
    next_space = art.title.find(" ", len(kept) + 1)
    longer = art.title[:next_space] + "… https://x.example/a"
    assert weighted(longer) > limit


# --------------------------------------------------------------- summaries that fill the room (issue 16)

STORY = (
    "The council approved the budget on Monday. It funds two new schools and a clinic. "
    "Dr. Pop said the U.S. model was studied. Work starts in May, and the first school opens in 2027. "
    "The clinic follows a year later."
)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (len(STORY), STORY),
        (60, "The council approved the budget on Monday."),
        (110, "The council approved the budget on Monday. It funds two new schools and a clinic."),
        # "Dr." and "U.S." end no sentence.
        (
            170,
            "The council approved the budget on Monday. It funds two new schools and a clinic. "
            "Dr. Pop said the U.S. model was studied.",
        ),
        (0, ""),
    ],
)
def test_cut_at_sentence(limit: int, expected: str) -> None:
    assert cut_at_sentence(STORY, limit) == expected


def test_cut_at_sentence_cuts_at_a_word_when_sentences_would_leave_most_of_the_room() -> None:
    text = "A short one. " + "then a sentence that runs on and on " * 5
    assert cut_at_sentence(text, 100) == shorten(text, 100)
    assert cut_at_sentence(text, 100).endswith("…") and len(cut_at_sentence(text, 100)) > 90


def test_a_cut_summary_is_cut_again_from_the_article_text(article: ShareArticle) -> None:
    stored = shorten(STORY, 60)
    cut = replace(article, summary=stored, lead=STORY)
    assert share_summary(cut, None) == stored  # no room given: the stored summary
    assert share_summary(cut, 500) == STORY
    assert share_summary(cut, 110).endswith("a clinic.")
    # A publisher's own description is not a cut of the text: kept as written.
    described = replace(article, summary="A budget for schools and a clinic.", lead=STORY)
    assert share_summary(described, 500) == "A budget for schools and a clinic."


def test_the_summary_fills_the_network_limit_and_ends_with_a_sentence(article: ShareArticle) -> None:
    long = replace(article, summary=shorten(STORY, 60), lead=STORY * 3, tags=(), category=None)
    text = render_text("{title}\n\n{summary}\n\n{url}", long, 300, summary_length=500)
    summary = text.split("\n\n")[1]
    assert summary.endswith(".") and (STORY * 3).startswith(summary)
    # Not more than one sentence of room is left unused.
    assert len(text) > 300 - max(len(s) for s in STORY.split(". "))
    assert render_text("{title}\n\n{summary}\n\n{url}", long, 300, summary_length=0).count("\n\n") == 1
