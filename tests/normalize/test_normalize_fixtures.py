"""Every page under tests/fixtures/pages/ normalized and checked against its ``.expected.json``.

Adding a case is adding two files: ``name.html`` (the page bytes, any encoding) and ``name.expected.json``.
Keys of the expectation file (all optional except ``url``):

- ``url``, ``content_type``, ``default_category``, ``language_hint``: arguments passed to ``normalize``;
- ``title``, ``canonical_url``, ``published``, ``updated``, ``category``, ``categories``, ``site_name``,
  ``word_count``, ``authors``, ``tags``, ``language``, ``image``, ``summary``: expected field values (dates as
  ISO 8601 strings as in the article JSON, a date-only source as ``YYYY-MM-DD``; lists for tuples);
- ``paragraphs``: expected number of blank-line separated paragraphs in ``text``;
- ``text_contains`` / ``text_excludes``, ``html_contains`` / ``html_excludes``: substrings (case-sensitive);
- ``text_starts_with`` / ``text_ends_with``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.normalize import Article, normalize

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
CASES = sorted(PAGES.glob("*.expected.json"))
FIELDS = (
    "title",
    "canonical_url",
    "published",
    "updated",
    "category",
    "categories",
    "site_name",
    "word_count",
    "authors",
    "tags",
    "language",
    "image",
    "summary",
)


def _page_for(expected_path: Path) -> Path:
    return expected_path.with_name(expected_path.name.removesuffix(".expected.json") + ".html")


def _run(expected: dict[str, Any], page: Path) -> Article:
    return normalize(
        page.read_bytes(),
        expected["url"],
        content_type=expected.get("content_type"),
        default_category=expected.get("default_category"),
        language_hint=expected.get("language_hint"),
    )


def test_fixture_pairs_are_complete():
    assert CASES, f"no fixtures in {PAGES}"
    for page in PAGES.glob("*.html"):
        assert page.with_name(page.name.removesuffix(".html") + ".expected.json").exists(), page.name
    for case in CASES:
        assert _page_for(case).exists(), case.name


@pytest.mark.parametrize("case", CASES, ids=[c.name.removesuffix(".expected.json") for c in CASES])
def test_fixture(case: Path):
    expected = json.loads(case.read_text(encoding="utf-8"))
    article = _run(expected, _page_for(case))
    data = article.to_dict()

    for field in FIELDS:
        if field in expected:
            # "category" is the first of "categories", read as the attribute the pipeline stores.
            actual = data[field] if field in data else getattr(article, field)
            assert actual == expected[field], f"{field}: {actual!r} != {expected[field]!r}"
    if "paragraphs" in expected:
        assert len(article.text.split("\n\n")) == expected["paragraphs"], article.text
    for needle in expected.get("text_contains", []):
        assert needle in article.text, f"missing from text: {needle!r}"
    for needle in expected.get("text_excludes", []):
        assert needle not in article.text, f"should not be in text: {needle!r}"
    for needle in expected.get("html_contains", []):
        assert needle in article.content_html, f"missing from content_html: {needle!r}"
    for needle in expected.get("html_excludes", []):
        assert needle not in article.content_html, f"should not be in content_html: {needle!r}"
    if "text_starts_with" in expected:
        assert article.text.startswith(expected["text_starts_with"]), article.text[:200]
    if "text_ends_with" in expected:
        assert article.text.endswith(expected["text_ends_with"]), article.text[-200:]

    # Invariants that hold for every page.
    assert article.url == expected["url"]
    assert len(article.summary) <= 300
    assert "\n\n\n" not in article.text
    for value in (article.published, article.updated):
        offset = value.utcoffset() if value is not None else None
        assert value is None or (offset is not None and offset.total_seconds() == 0)
    assert json.loads(json.dumps(data)) == data
