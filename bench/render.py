"""Feed render benchmark: ``feeds.build`` against building the same RSS and Atom directly with lxml.

The items are what the pipeline renders: each body is a few KB of real markup (headings, paragraphs, a
blockquote, links, emphasis, a list, a figure) built from the seed article (``/work/shared/seed/
article.txt``, varied per item so no two bodies are equal) and passed through the real normalizer
(``worker.normalize.normalize``), exactly as a pushed article is before it is stored; the items then
come from the stored rows' shape (``content_is_clean=True``, as ``worker.store.queries.feed_items`` sets).

For 50 and 1,000 items, each of RSS and Atom (and JSON Feed, which has no lxml peer), one round times:

* **cold**: ``feeds.build.clear_cache()`` (cleaned items, elements, entry templates, memos) then
  ``build_feed``: the first render after a worker starts.
* **warm**: one item changed (a new title and date), then ``build_feed``: the normal re-render.
* **lxml**: the same channel/feed and items, each element written directly with ``lxml.etree``
  (namespaces, dates, ``content:encoded``, ``dc:creator``, ``media:content``, Atom ``<source>``,
  hub/self links), serialised with ``pretty_print`` as ours is. It is handed the fields already clean
  and cut, so it is the floor: what writing this document costs at all.

Rounds are interleaved (cold, warm, lxml, cold, ...), ``--repeat`` of them; medians and ratios to lxml.
The load average is printed before and after: on a shared machine, rerun when it is over 1.5.
Run from the repository root: ``.venv/bin/python bench/render.py [--repeat 15] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import html
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/render.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from feeds import build  # noqa: E402
from feeds.build import FeedItem, FeedMeta  # noqa: E402
from worker.normalize import normalize  # noqa: E402

SEED = Path("/work/shared/seed/article.txt")
BASE = "https://news.example.org"
HUB = "https://hub.example.org/"
SIZES = (50, 1000)
ATOM = "http://www.w3.org/2005/Atom"
CONTENT = "http://purl.org/rss/1.0/modules/content/"
DC = "http://purl.org/dc/elements/1.1/"
MEDIA = "http://search.yahoo.com/mrss/"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def seed_paragraphs() -> list[str]:
    """The seed article's paragraphs (a built-in stand-in when the seed file is not on this machine)."""
    if SEED.is_file():
        text = SEED.read_text(encoding="utf-8")
    else:
        text = "\n\n".join(
            "The Cluj IT Cluster and the Rawabi Tech Hub signed a partnership on training, research "
            f"and exports, paragraph {n}, with universities, companies and public partners." * 3
            for n in range(8)
        )
    return [p.strip() for p in text.split("\n\n") if len(p.strip()) > 40]


def article_document(n: int, paragraphs: list[str]) -> str:
    """A publisher's page for item ``n``: the seed story's paragraphs with real markup around them."""
    rng = random.Random(n)
    picked = paragraphs[:]
    rng.shuffle(picked)
    body = [f"<h2>Partnership update {n}</h2>"]
    for i, para in enumerate(picked):
        words = para.split()
        rng.shuffle(words[: len(words) // 3])
        text = html.escape(" ".join(words))
        if i == 1:
            body.append(f"<blockquote><p>{text}</p></blockquote>")
        elif i == 2:
            body.append(
                f'<p>{text[:200]} <a href="{BASE}/related/{n}-{i}">read the agreement</a> '
                f"<strong>{text[200:260]}</strong> <em>{text[260:320]}</em> {text[320:]}</p>"
            )
        elif i == 3:
            items = "".join(f"<li>{html.escape(w)} programme</li>" for w in words[:4])
            body.append(f"<p>{text}</p><ul>{items}</ul>")
        else:
            body.append(f"<p>{text}</p>")
    figure = (
        f'<figure><img src="{BASE}/img/{n}.jpg" alt="The delegation in Cluj">'
        "<figcaption>The delegation in Cluj-Napoca.</figcaption></figure>"
    )
    body.insert(2, figure)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Story {n}</title>"
        f"<link rel='canonical' href='{BASE}/news/{n}'></head><body><nav><a href='/'>Home</a></nav>"
        f"<article><h1>Cluj IT Cluster story {n}</h1>{''.join(body)}</article>"
        "<footer>© News</footer></body></html>"
    )


def make_items(count: int) -> list[FeedItem]:
    """``count`` items as the pipeline builds them from normalized, stored articles, newest first."""
    paragraphs = seed_paragraphs()
    items = []
    for n in range(count):
        data = normalize(article_document(n, paragraphs), f"{BASE}/news/{n}")
        published = NOW - timedelta(hours=n + 1)
        items.append(
            FeedItem(
                id=f"tag:news.example.org,2026-12-01:article/{n}",
                url=f"{BASE}/news/{n}",
                title=data.title or f"Story {n}",
                summary=data.summary or "",
                content_html=data.content_html,
                published=published,
                updated=published + timedelta(minutes=5),
                authors=("Ana Pop",),
                categories=("Partnerships", "IT"),
                image=f"{BASE}/img/{n}.jpg",
                source_name="Cluj IT Cluster",
                source_url="https://clujit.example/",
                source_id="https://clujit.example/",
                content_is_clean=True,
            )
        )
    return items


def meta() -> FeedMeta:
    """The feed as the pipeline describes ``all`` (hub, stylesheet, an archive link)."""
    return FeedMeta(
        name="all",
        title="All news",
        home_url=BASE + "/",
        self_url_base=BASE + "/feeds/all",
        description="Every story",
        language="en",
        hub_url=HUB,
        id=BASE + "/feeds/all",
        stylesheet_url=BASE + "/feeds.xsl",
        prev_archive=BASE + "/feeds/all/archive/3",
        now=NOW,
        # Every body whole at 1,000 items too (the default 2 MB budget would shorten 40 % of them),
        # so ours and lxml write the same document.
        max_feed_bytes=10_000_000,
    )


def _text(parent: etree._Element, tag: str, text: str, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attrs)
    element.text = text
    return element


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def lxml_rss(m: FeedMeta, items: list[FeedItem]) -> bytes:
    """The same RSS 2.0 document written directly with lxml (fields taken as already clean)."""
    nsmap = {"atom": ATOM, "content": CONTENT, "dc": DC, "media": MEDIA}
    rss = etree.Element("rss", version="2.0", nsmap=nsmap)
    channel = etree.SubElement(rss, "channel")
    _text(channel, "title", m.title)
    _text(channel, "link", m.home_url)
    _text(channel, "description", m.description)
    etree.SubElement(channel, f"{{{ATOM}}}link", href=m.self_url_base + ".rss", rel="self")
    etree.SubElement(channel, f"{{{ATOM}}}link", href=HUB, rel="hub")
    etree.SubElement(channel, f"{{{ATOM}}}link", href=f"{m.prev_archive}.rss", rel="prev-archive")
    _text(channel, "generator", "Syndicate")
    _text(channel, "language", m.language or "en")
    _text(channel, "lastBuildDate", format_datetime(items[0].updated or NOW))
    for item in items:
        entry = etree.SubElement(channel, "item")
        _text(entry, "title", item.title)
        _text(entry, "link", item.url)
        _text(entry, "description", html.escape(item.summary, quote=False))
        _text(entry, f"{{{CONTENT}}}encoded", item.content_html)
        _text(entry, "guid", item.id, isPermaLink="false")
        for term in item.categories:
            _text(entry, "category", term)
        _text(entry, "pubDate", format_datetime(item.published or NOW))
        for name in item.authors:
            _text(entry, f"{{{DC}}}creator", name)
        etree.SubElement(
            entry, f"{{{MEDIA}}}content", url=item.image or "", medium="image", type="image/jpeg"
        )
    rss.addprevious(
        etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{m.stylesheet_url}"')
    )
    out: bytes = etree.tostring(rss.getroottree(), pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return out


def lxml_atom(m: FeedMeta, items: list[FeedItem]) -> bytes:
    """The same Atom 1.0 document written directly with lxml (fields taken as already clean)."""
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM, "media": MEDIA})
    _text(feed, "id", m.id or m.self_url_base)
    _text(feed, "title", m.title)
    _text(feed, "updated", _iso(items[0].updated or NOW))
    author = etree.SubElement(feed, "author")
    _text(author, "name", m.title)
    for href, rel in (
        (m.self_url_base + ".atom", "self"),
        (HUB, "hub"),
        (f"{m.prev_archive}.atom", "prev-archive"),
        (m.home_url, "alternate"),
    ):
        etree.SubElement(feed, "link", href=href, rel=rel)
    _text(feed, "generator", "Syndicate")
    _text(feed, "subtitle", m.description)
    for item in items:
        entry = etree.SubElement(feed, "entry")
        _text(entry, "id", item.id)
        _text(entry, "title", item.title)
        _text(entry, "updated", _iso(item.updated or NOW))
        for name in item.authors:
            _text(etree.SubElement(entry, "author"), "name", name)
        _text(entry, "content", item.content_html, type="html")
        for term in item.categories:
            etree.SubElement(entry, "category", term=term)
        _text(entry, "published", _iso(item.published or NOW))
        _text(entry, "summary", html.escape(item.summary, quote=False), type="html")
        etree.SubElement(entry, "link", rel="alternate", type="text/html", href=item.url)
        etree.SubElement(entry, "link", rel="enclosure", href=item.image or "", type="image/jpeg")
        source = etree.SubElement(entry, "source")
        _text(source, "id", item.source_id or "")
        _text(source, "title", item.source_name or "")
        _text(source, "updated", _iso(item.updated or NOW))
        etree.SubElement(source, "link", rel="alternate", href=item.source_url or "")
    feed.addprevious(
        etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{m.stylesheet_url}"')
    )
    out: bytes = etree.tostring(feed.getroottree(), pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return out


LXML: dict[str, Callable[[FeedMeta, list[FeedItem]], bytes]] = {"rss": lxml_rss, "atom": lxml_atom}


def edited(items: list[FeedItem], round_no: int) -> list[FeedItem]:
    """``items`` with the newest one edited (new title and date): what a normal re-render sees."""
    first = items[0]
    when = NOW - timedelta(minutes=round_no % 50 + 1)
    return [replace(first, title=f"{first.title} (update {round_no})", updated=when), *items[1:]]


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(size: int, fmt: str, repeat: int) -> dict[str, float]:
    """Median seconds of cold, warm and (RSS/Atom) lxml renders of ``size`` items, interleaved."""
    items = make_items(size)
    m = meta()
    build.build_feed(m, items, fmt)  # imports and first-call set-up out of the way
    cold, warm, direct = [], [], []
    for r in range(repeat):
        build.clear_cache()
        cold.append(timed(lambda: build.build_feed(m, items, fmt)))
        changed = edited(items, r)
        warm.append(timed(lambda: build.build_feed(m, changed, fmt)))  # noqa: B023 (called right here)
        if fmt in LXML:
            direct.append(timed(lambda: LXML[fmt](m, items)))
    out = {"cold": statistics.median(cold), "warm": statistics.median(warm)}
    if direct:
        out["lxml"] = statistics.median(direct)
    return out


def profile(size: int, fmt: str) -> None:
    """Print where a cold render of ``size`` items spends its time (cProfile, top 25 by own time)."""
    items = make_items(size)
    m = meta()
    build.build_feed(m, items, fmt)
    build.clear_cache()
    prof = cProfile.Profile()
    prof.enable()
    build.build_feed(m, items, fmt)
    prof.disable()
    print(f"\ncold {fmt} render of {size} items, by cumulative time:")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


def main() -> None:
    """Print the table: per size and format, cold/warm/lxml milliseconds and the ratios to lxml."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=15, help="interleaved rounds per cell (medians)")
    parser.add_argument("--profile", action="store_true", help="also profile a cold render of each size")
    args = parser.parse_args()
    sample = make_items(50)
    body_kb = statistics.median(len(i.content_html.encode()) for i in sample) / 1000
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"items: normalized seed-article bodies, median {body_kb:.1f} KB; {args.repeat} rounds, medians")
    print(f"load average at start: {load}\n")
    header = (
        f"{'items':>6} {'format':<6} {'cold ms':>9} {'warm ms':>9} {'lxml ms':>9} {'cold x':>7} {'warm x':>7}"
    )
    print(header)
    print("-" * len(header))
    for size in SIZES:
        for fmt in ("rss", "atom", "json"):
            t = measure(size, fmt, args.repeat)
            ms = {k: v * 1000 for k, v in t.items()}
            if "lxml" in ms:
                tail = f"{ms['lxml']:9.2f} {ms['cold'] / ms['lxml']:6.2f}x {ms['warm'] / ms['lxml']:6.2f}x"
            else:
                tail = f"{'—':>9} {'—':>7} {'—':>7}"
            print(f"{size:>6} {fmt:<6} {ms['cold']:9.2f} {ms['warm']:9.2f} {tail}", flush=True)
    print("\nload average at end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.profile:
        for size in SIZES:
            for fmt in ("rss", "atom"):
                profile(size, fmt)


if __name__ == "__main__":
    main()
