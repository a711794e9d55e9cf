"""Metadata failure families of issue 6: dates in several languages and notations, date-only values kept as
dates, titles with site-name segments, bylines in other languages, organisations and repeated names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.normalize import normalize
from worker.normalize.dates import date_in_url, find_date, has_time, parse_datetime
from worker.normalize.decode import prepare
from worker.normalize.titles import choose, strip_site

URL = "https://news.example.org/section/story.html"
BODY = (
    "<p>"
    + "The story itself, told in enough words to be a real article body for the extractor. " * 4
    + "</p>"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10. Mai 2014", datetime(2014, 5, 10, tzinfo=UTC)),
        ("06.03.2019", datetime(2019, 3, 6, tzinfo=UTC)),
        ("2019/03/06", datetime(2019, 3, 6, tzinfo=UTC)),
        ("Publié le 1er mars 2019", datetime(2019, 3, 1, tzinfo=UTC)),
        ("6 de marzo de 2019", datetime(2019, 3, 6, tzinfo=UTC)),
        ("6 marzo 2019", datetime(2019, 3, 6, tzinfo=UTC)),
        ("6 martie 2019", datetime(2019, 3, 6, tzinfo=UTC)),
        ("6 مارس 2019", datetime(2019, 3, 6, tzinfo=UTC)),
        ("25/12/2019", datetime(2019, 12, 25, tzinfo=UTC)),
        ("12/25/2019", datetime(2019, 12, 25, tzinfo=UTC)),
    ],
)
def test_find_date_in_languages_and_notations(text: str, expected: datetime) -> None:
    found = find_date(text)
    assert found is not None and found[0] == expected


def test_ambiguous_slash_date_is_not_guessed() -> None:
    assert find_date("03/06/2019") is None


def test_date_only_values_stay_that_day() -> None:
    assert parse_datetime("2019-03-06") == datetime(2019, 3, 6, tzinfo=UTC)
    assert not has_time("2019-03-06") and has_time("2019-03-06T00:30:00+02:00")
    # A real time with an offset is converted; a date is never shifted to the day before.
    assert parse_datetime("2019-03-06T00:30:00+02:00") == datetime(2019, 3, 5, 22, 30, tzinfo=UTC)
    head = '<script type="application/ld+json">{"@type":"NewsArticle","datePublished":"2019-03-06"}</script>'
    article = normalize(f"<html><head>{head}<title>T</title></head><body>{BODY}</body></html>", URL)
    assert article.to_dict()["published"] == "2019-03-06"


def test_date_in_url() -> None:
    assert date_in_url("https://x.example/2019/03/06/slug") == datetime(2019, 3, 6, tzinfo=UTC)
    assert date_in_url("https://x.example/news/20190306-slug.html") == datetime(2019, 3, 6, tzinfo=UTC)
    assert date_in_url("https://x.example/news/123456/slug") is None


def test_script_closer_followed_by_whitespace() -> None:
    prepared = prepare("<p>before</p><script>var x = 1;</script\n><p>after</p><script>y</script\t>tail")
    assert "after" in prepared.html and "tail" in prepared.html and "var x" not in prepared.html


@pytest.mark.parametrize(
    ("title", "site_name", "expected"),
    [
        (
            "Harbor Town | News | Ferry line approved by the council",
            None,
            "Ferry line approved by the council",
        ),
        (
            "Ferry line approved by the council \u2013 Harbor Town Gazette",
            "Harbor Town Gazette",
            "Ferry line approved by the council",
        ),
        ("Ferry line approved by the council - Harbortown", None, "Ferry line approved by the council"),
        ("Ferry line approved by the council | Local", None, "Ferry line approved by the council"),
    ],
)
def test_strip_site_segments(title: str, site_name: str | None, expected: str) -> None:
    assert strip_site(title, site_name, "https://www.harbortown.example/news/x") == expected


def test_visible_h1_wins_when_it_agrees() -> None:
    chosen = choose(
        headline=None,
        og_title="Rawabi Tech Hub signs partnership with Romania's Cluj IT Cluster",
        page_title="Rawabi Tech Hub signs partnership... | Rawabi",
        headings=["Rawabi", "Rawabi Tech Hub signs partnership with Romania\u2019s Cluj IT Cluster"],
        site_name="Rawabi",
        url=URL,
    )
    assert chosen == "Rawabi Tech Hub signs partnership with Romania\u2019s Cluj IT Cluster"
    # A logo h1 that agrees with nothing does not win.
    assert choose(
        headline="The real story", og_title=None, page_title="", headings=["Logo"], site_name=None, url=URL
    ) == ("The real story")


@pytest.mark.parametrize(
    ("byline", "expected"),
    [
        ("Von Anna Müller", ("Anna Müller",)),
        ("par Jean Dupont et Marie Curie", ("Jean Dupont", "Marie Curie")),
        ("di Marco Rossi", ("Marco Rossi",)),
        ("de Ana Pop și Ion Ionescu", ("Ana Pop", "Ion Ionescu")),
        ("بقلم أحمد علي", ("أحمد علي",)),
        ("By Jane Doe, Jane Doe", ("Jane Doe",)),
    ],
)
def test_bylines_in_other_languages(byline: str, expected: tuple[str, ...]) -> None:
    head = f'<title>T</title><meta name="author" content="{byline}">'
    article = normalize(f"<html><head>{head}</head><body>{BODY}</body></html>", URL)
    assert article.authors == expected


def test_person_preferred_to_the_organisation() -> None:
    ld = (
        '{"@type":"NewsArticle","headline":"T","author":[{"@type":"Organization","name":"Daily Paper"},'
        '{"@type":"Person","name":"Jo Rivers"},{"@type":"Person","name":"Jo Rivers"}]}'
    )
    head = f'<script type="application/ld+json">{ld}</script>'
    article = normalize(f"<html><head>{head}</head><body>{BODY}</body></html>", URL)
    assert article.authors == ("Jo Rivers",)
    only_org = '{"@type":"NewsArticle","headline":"T","author":{"@type":"Organization","name":"Daily Paper"}}'
    head = f'<script type="application/ld+json">{only_org}</script>'
    article = normalize(f"<html><head>{head}</head><body>{BODY}</body></html>", URL)
    assert article.authors == ("Daily Paper",)
