"""Unit tests of worker.normalize: Article record, errors, robustness, encodings, metadata, cleaning."""

from __future__ import annotations

import codecs
import dataclasses
import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from worker.errors import NormalizeError, SyndicateError
from worker.normalize import Article, normalize
from worker.normalize.article import summarize
from worker.normalize.dates import find_date, parse_datetime
from worker.normalize.decode import MAX_BYTES, decode_bytes
from worker.normalize.language import guess_language

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "pages"
URL = "https://news.example.org/section/2019/03/story.html"
LOREM = (
    "The partnership between the two technology clusters was signed in January, and both sides expect "
    "the first joint projects, mentorship programmes and market channels to start during the spring. "
)


def page(body: str, head: str = "<title>A headline for testing</title>") -> str:
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>"


def paragraphs(count: int = 4) -> str:
    return "".join(f"<p>{LOREM}Paragraph {i}.</p>" for i in range(count))


@pytest.fixture(scope="module")
def seed_article() -> Article:
    return normalize(
        (PAGES / "agency-blog.html").read_bytes(), "https://northgate.example/blog/it-systems/x/"
    )


# --- the Article record ------------------------------------------------------------------------------


def test_to_dict_round_trips_through_json(seed_article: Article):
    data = seed_article.to_dict()
    text = json.dumps(data)
    assert json.loads(text) == data
    assert data["published"] == "2019-03-06"  # a date-only source stays a date
    assert isinstance(data["authors"], list) and isinstance(data["tags"], list)
    assert data["content_hash"] == seed_article.content_hash
    assert Article.from_dict(json.loads(text)) == seed_article


def test_content_hash_is_stable_and_tracks_the_text(seed_article: Article):
    again = normalize(
        (PAGES / "agency-blog.html").read_bytes(), "https://northgate.example/blog/it-systems/x/"
    )
    assert again.content_hash == seed_article.content_hash
    assert len(seed_article.content_hash) == 64
    edited = dataclasses.replace(seed_article, text=seed_article.text.replace("65 members", "70 members"))
    assert edited.content_hash != seed_article.content_hash
    retitled = dataclasses.replace(seed_article, title="Another title")
    assert retitled.content_hash != seed_article.content_hash
    moved = dataclasses.replace(
        seed_article, url="https://mirror.example/x", canonical_url="https://mirror.example/x"
    )
    assert moved.content_hash == seed_article.content_hash


def test_content_hash_is_pinned_across_runs():
    article = Article(
        url="https://a.example/1",
        canonical_url="https://a.example/1",
        title="Title",
        published=datetime(2019, 3, 6, tzinfo=UTC),
        updated=None,
        authors=(),
        categories=(),
        tags=(),
        image=None,
        content_html="<p>Body text.</p>",
        text="Body text.",
        language="en",
        summary="Body text.",
    )
    # A literal: the hash must not depend on the process (no hash(), no dict ordering, no randomness).
    assert article.content_hash == "367484a9af87ec057b6e9daa8fdee06632a44c16a4b9a030291b180c90a436bd"


def test_article_is_frozen(seed_article: Article):
    with pytest.raises(dataclasses.FrozenInstanceError):
        seed_article.title = "x"  # type: ignore[misc]


# --- summary -----------------------------------------------------------------------------------------


def test_summary_is_cut_on_a_word_boundary():
    text = "word " * 200
    summary = summarize(text)
    assert len(summary) <= 300
    assert summary.endswith("…")
    assert summary[:-1].split(" ")[-1] == "word"
    assert summarize("short text") == "short text"
    exact = "x" * 300
    assert summarize(exact) == exact


def test_summary_from_body_when_no_description():
    article = normalize(page(paragraphs(6)), URL)
    assert len(article.summary) <= 300
    assert article.summary.endswith("…")
    assert article.summary.startswith("The partnership between the two technology clusters")
    assert article.text.replace("\n\n", " ").startswith(article.summary[:-1].rstrip(" .,"))


# --- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        b"",
        "   \n\t ",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20,
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj",
        random.Random(7).randbytes(50_000),
        b"\x00" * 4096,
        '{"title": "json, not html"}',
        "Just some plain text without any markup at all.",
        page("<div><span></span></div>", head=""),
    ],
    ids=[
        "empty-bytes",
        "whitespace",
        "png",
        "pdf",
        "random-bytes",
        "nul-bytes",
        "json",
        "plain-text",
        "empty-html",
    ],
)
def test_no_article_raises_normalize_error(document: bytes | str):
    with pytest.raises(NormalizeError) as info:
        normalize(document, URL)
    assert str(info.value)
    assert isinstance(info.value, SyndicateError)


def test_non_html_content_type_is_refused():
    with pytest.raises(NormalizeError, match="image/png"):
        normalize(page(paragraphs()), URL, content_type="image/png")


# --- robustness --------------------------------------------------------------------------------------


def test_deep_nesting_does_not_crash():
    html = page("<div>" * 5000 + paragraphs(3) + "</div>" * 5000)
    article = normalize(html, URL)
    assert "Paragraph 2." in article.text
    inline = page("<p>" + "<b><i>" * 3000 + LOREM + "</i></b>" * 3000 + "</p>" + paragraphs(2))
    assert "Paragraph 1." in normalize(inline, URL).text


def test_unclosed_tags_nul_bytes_and_garbage():
    html = (
        "<html><head><title>Broken page</title><body><div><p>"
        + LOREM
        + "\x00\x01<b>bold <i>both</b> italic?</i>"
        "<p>" + LOREM + "<table><tr><td>cell<td>cell2<div><span>" + LOREM + "</table></div></span><p>"
    )
    article = normalize(html, URL)
    assert article.title == "Broken page"
    assert "\x00" not in article.text and "\x01" not in article.text
    garbage = page(paragraphs(3)).encode() + random.Random(3).randbytes(300) + b"</body>"
    assert "Paragraph 1." in normalize(garbage, URL).text


def test_unclosed_script_and_comment_swallow_the_rest_without_hanging():
    html = page(paragraphs(3) + "<script>" * 20_000 + "<!-- never closed")
    started = time.perf_counter()
    article = normalize(html, URL)
    assert time.perf_counter() - started < 5
    assert "Paragraph 2." in article.text


def test_huge_page_is_capped_and_fast():
    filler = "<div class='x'><p>" + LOREM + "</p></div>\n"
    html = page(paragraphs(3) + filler * (MAX_BYTES // len(filler) + 2000))
    assert len(html) > MAX_BYTES
    started = time.perf_counter()
    article = normalize(html.encode(), URL)
    assert time.perf_counter() - started < 20
    assert "Paragraph 0." in article.text


def test_surrogates_in_str_input():
    article = normalize(page("<p>" + LOREM + "\ud800 broken</p>"), URL)
    assert "broken" in article.text


# --- encodings ---------------------------------------------------------------------------------------


def test_charset_from_header_wins_over_meta():
    html = page(
        "<p>Софтуерни компании от Клуж подписаха споразумение със Рауаби, " + LOREM + "</p>",
        head='<meta charset="windows-1252"><title>Заглавие на статията</title>',
    )
    article = normalize(html.encode("cp1251"), URL, content_type="text/html; charset=windows-1251")
    assert article.title == "Заглавие на статията"


def test_meta_charset_is_used_without_header():
    html = page(
        "<p>Компании от Клуж, " + LOREM + "</p>",
        head='<meta http-equiv="Content-Type" '
        'content="text/html; charset=koi8-r"><title>Новости Клужа</title>',
    )
    assert normalize(html.encode("koi8-r"), URL).title == "Новости Клужа"


@pytest.mark.parametrize("codec", ["utf-16", "utf-8-sig"])
def test_byte_order_mark(codec: str):
    html = page("<p>Café “quoted” " + LOREM + "</p>", head="<title>Café headline</title>")
    article = normalize(html.encode(codec), URL, content_type="text/html; charset=iso-8859-1")
    assert article.title == "Café headline"
    assert "“quoted”" in article.text


def test_decode_bytes_fallbacks():
    assert decode_bytes("naïve “x”".encode("cp1252")) == "naïve “x”"
    assert decode_bytes("naïve “x”".encode()) == "naïve “x”"
    assert decode_bytes("naïve “x”".encode("cp1252"), "text/html; charset=utf-8") == "naïve “x”"
    assert decode_bytes("naïve “x”".encode(), "text/html; charset=latin-1") == "naïve “x”"
    # A UTF-8 character cut in half by the size cap is not a reason to fall back to cp1252.
    cut = ("é" * 10).encode()[:-1]
    assert decode_bytes(cut, "text/html; charset=utf-8") == "é" * 9
    assert codecs.lookup("cp1252")  # sanity: the fallback codec exists


# --- metadata ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6th March 2019 - IT Systems", datetime(2019, 3, 6, tzinfo=UTC)),
        ("Posted March 6, 2019", datetime(2019, 3, 6, tzinfo=UTC)),
        ("2019-03-06", datetime(2019, 3, 6, tzinfo=UTC)),
        ("on 1st of Sept. 2020", datetime(2020, 9, 1, tzinfo=UTC)),
        ("06.03.2019", datetime(2019, 3, 6, tzinfo=UTC)),
    ],
)
def test_find_date(text: str, expected: datetime):
    found = find_date(text)
    assert found is not None and found[0] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-03-04T09:30:00+02:00", datetime(2019, 3, 4, 7, 30, tzinfo=UTC)),
        ("2019-03-04T09:30:00Z", datetime(2019, 3, 4, 9, 30, tzinfo=UTC)),
        ("2019-03-04 09:30", datetime(2019, 3, 4, 9, 30, tzinfo=UTC)),
        ("Mon, 04 Mar 2019 09:30:00 GMT", datetime(2019, 3, 4, 9, 30, tzinfo=UTC)),
        ("1551691800", datetime(2019, 3, 4, 9, 30, tzinfo=UTC)),
        ("6th March 2019", datetime(2019, 3, 6, tzinfo=UTC)),
        ("3 hours ago", None),
        ("", None),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_parse_datetime(value: str, expected: datetime | None):
    assert parse_datetime(value) == expected


def test_json_ld_graph_and_broken_blocks():
    head = (
        "<title>Fallback title | Site</title>"
        '<script type="application/ld+json">{"broken": </script>'
        '<script type="application/ld+json">{"@context":"https://schema.org","@graph":[{"@type":"WebSite",'
        '"name":"Site"},{"@type":["BlogPosting"],"headline":"LD headline","datePublished":"2019-03-06",'
        '"author":"Jane Doe","keywords":["one","two"],"articleSection":"IT Systems",}]}</script>'
    )
    article = normalize(page(paragraphs(), head=head), URL)
    assert article.title == "LD headline"
    assert article.published == datetime(2019, 3, 6, tzinfo=UTC)
    assert article.authors == ("Jane Doe",)
    assert article.tags == ("one", "two")
    assert article.category == "IT Systems"


def test_json_ld_article_body_is_a_fallback_for_empty_markup():
    head = (
        '<script type="application/ld+json">{"@type":"NewsArticle","headline":"Rendered by JS",'
        '"articleBody":"First paragraph of the body.\\n\\nSecond <paragraph> here."}</script>'
    )
    article = normalize(page('<div id="app"></div>', head=head), URL)
    assert article.text == "First paragraph of the body.\n\nSecond <paragraph> here."
    assert "&lt;paragraph&gt;" in article.content_html


def test_meta_fallbacks_and_default_category():
    head = (
        '<title>Page | Site</title><meta name="author" content="By Ana Pop and Ion Ionescu">'
        '<meta name="keywords" content="cluj, rawabi, , IT">'
        '<meta property="og:title" content="OG headline">'
    )
    article = normalize(page(paragraphs(), head=head), URL, default_category="News")
    assert article.title == "OG headline"
    assert article.authors == ("Ana Pop", "Ion Ionescu")
    assert article.tags == ("cluj", "rawabi", "IT")
    assert article.category == "News"


def test_title_from_h1_inside_title_tag():
    body = '<h1 class="logo">Site</h1><article><h1>The real headline</h1>' + paragraphs() + "</article>"
    article = normalize(page(body, head="<title>The real headline - Site</title>"), URL)
    assert article.title == "The real headline"
    assert "The real headline" not in article.text


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (
            '<link rel="canonical" href="/section/2019/03/story">',
            "https://news.example.org/section/2019/03/story",
        ),
        (
            '<link rel="canonical" href="https://www.news.example.org/s#frag">',
            "https://www.news.example.org/s",
        ),
        ('<link rel="canonical" href="https://aggregator.example/copy">', URL),
        ('<link rel="canonical" href="javascript:alert(1)">', URL),
        (
            '<meta property="og:url" content="https://m.news.example.org/story">',
            "https://m.news.example.org/story",
        ),
    ],
)
def test_canonical_url(link: str, expected: str):
    article = normalize(page(paragraphs(), head="<title>t</title>" + link), URL + "#comments")
    assert article.canonical_url == expected


def test_language_sources():
    sentence = "وقعت روابي وكلوج اتفاقية شراكة في مجال تكنولوجيا المعلومات لدعم الشركات الناشئة. "
    arabic = "<p>" + sentence * 5 + "</p>"
    assert normalize(page(arabic), URL).language == "ar"
    assert normalize(page(paragraphs()), URL, language_hint="ro-RO").language == "ro"
    locale = '<meta property="og:locale" content="fr_FR">'
    assert normalize(page(paragraphs(), head=locale), URL).language == "fr"
    declared = f'<html lang="de-AT"><head><title>t</title></head><body>{paragraphs()}</body></html>'
    assert normalize(declared, URL, language_hint="ro").language == "de"
    assert guess_language("1234 5678") is None


# --- body cleaning -----------------------------------------------------------------------------------


def test_relative_links_and_images_become_absolute():
    body = (
        "<article>"
        + paragraphs(2)
        + '<p>See <a href="../other.html">other</a>, <a href="/root">root</a>, <a href="rel">rel</a>, '
        '<a href="//cdn.example.net/x">cdn</a>, <a href="javascript:alert(1)">bad</a>, '
        '<a href="mailto:desk@news.example.org">mail</a>.</p>'
        '<img src="data:image/gif;base64,R0lGOD" data-src="img/lazy.jpg" alt="lazy">'
        '<img src="/img/a.png" onerror="alert(1)"></article>'
    )
    html = normalize(page(body), URL).content_html
    assert 'href="https://news.example.org/section/2019/other.html"' in html
    assert 'href="https://news.example.org/root"' in html
    assert 'href="https://news.example.org/section/2019/03/rel"' in html
    assert 'href="https://cdn.example.net/x"' in html
    assert 'href="mailto:desk@news.example.org"' in html
    assert "javascript" not in html and "onerror" not in html
    assert 'src="https://news.example.org/section/2019/03/img/lazy.jpg"' in html
    assert 'src="https://news.example.org/img/a.png"' in html


def test_base_href_is_honoured():
    head = '<title>t</title><base href="https://static.example.org/base/">'
    body = "<article>" + paragraphs() + '<img src="pic.jpg"></article>'
    html = normalize(page(body, head=head), URL).content_html
    assert 'src="https://static.example.org/base/pic.jpg"' in html


def test_share_widget_is_removed_by_its_links_and_words():
    body = (
        "<article>"
        + paragraphs(3)
        + '<div><span>Share</span> <a href="https://x.com/intent/tweet?url=u">X</a> '
        '<a href="https://www.facebook.com/sharer.php?u=u">f</a></div>'
        '<ul class="post-social"><li><a href="https://example.org/follow">Follow us</a></li></ul>'
        "<p>Share this article</p></article>"
    )
    article = normalize(page(body), URL)
    assert "Share" not in article.text
    assert "x.com" not in article.content_html and "Follow us" not in article.text
    assert article.text.endswith("Paragraph 2.")


def test_sanitized_html_keeps_only_the_allow_list():
    body = (
        '<article><h2 style="color:red" onclick="x()">Sub <u>heading</u></h2>'
        + paragraphs(2)
        + "<table><tr><th>Year</th><td>2019</td></tr></table><pre><code>a  =  1\nb = 2</code></pre>"
        "<ul><li>one</li><li>two</li></ul><p>x<sup>2</sup> <iframe src='https://evil.example'></iframe></p></article>"
    )
    html = normalize(page(body), URL).content_html
    assert "<h2>Sub heading</h2>" in html
    assert "<table>" in html and "<th>Year</th>" in html
    assert "<pre><code>a  =  1\nb = 2</code></pre>" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    for banned in ("style=", "onclick", "<u>", "<sup>", "iframe", "evil", "<div", "<span"):
        assert banned not in html


def test_loose_text_and_double_breaks_become_paragraphs():
    body = f'<div class="content">{LOREM}first<br><br>{LOREM}second<br>line two<div>{LOREM}third</div></div>'
    article = normalize(page(body), URL)
    assert article.text.split("\n\n") == [
        f"{LOREM}first".strip(),
        f"{LOREM}second\nline two".strip(),
        f"{LOREM}third".strip(),
    ]
    assert article.content_html.count("<p>") == 3


def test_unclosed_title_swallows_the_page_and_is_no_article() -> None:
    # As in a browser, an unclosed <title> holds the rest of the page: there is no body to store.
    body = "<p>" + "A long paragraph of the article body that goes on. " * 40 + "</p>"
    with pytest.raises(NormalizeError, match="no body text"):
        normalize(f"<html><head><title>Partner news{body}</html>", "https://x.example/a")
