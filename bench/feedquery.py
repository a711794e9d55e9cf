"""What a feed render reads from the database: category- and tag-filtered feeds against the unfiltered one.

A render asks the database for the current document's items (``feed_items``) and for the ids past the
last full archive page (``current_feed``); an archive page for its own ids (``archive_page``). The
unfiltered feed is the floor: SQL selects its rows with a count and a ``LIMIT``. A feed filtered by
category or tag must select the same way, or each render costs more as the archive grows.

    .venv/bin/python bench/feedquery.py [--articles 2000 20000] [--repeat 9] [--postgres | --database-url URL]
        [--stories]

Medians of ``--repeat`` rounds, interleaved; a throwaway SQLite file, a throwaway PostgreSQL cluster
with ``--postgres``, or ``--database-url`` naming an empty database (it is migrated and filled).
``--stories`` puts every article in a story (issue 18): of each ten, three report one story, the
other seven a story each, so merged feeds list one entry per story; the "render" column is the
current document's reads plus its rendering in three formats (warm item cache, as a worker has).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import delete, select, text, update

from config.model import parse_config
from config.settings import Settings
from feeds.build import render_all
from tests.support.services import PostgresServer
from worker.crawl import sync_sources
from worker.render import archive_page, current_feed
from worker.runtime import Runtime
from worker.store.db import upgrade
from worker.store.models import Article, Source, Story
from worker.store.queries import archive_count, archive_page_size

CATEGORIES = ["IT", "Energy", "Health", "Education", "Transport"]
TAGS = ["cluj", "rawabi", "startups", "ai", "cloud", "grants", "events", "hiring"]
FEEDS: list[dict[str, Any]] = [
    {"name": "all", "title": "All"},
    {"name": "it", "title": "IT", "categories": ["it"]},
    {"name": "grants", "title": "Grants", "tags": ["Grants"]},
    {"name": "it-cluj", "title": "IT in Cluj", "categories": ["IT"], "tags": ["cluj"]},
    {"name": "partner", "title": "Partner", "sources": ["partner"]},  # per source: one entry per article
]


def runtime(database_url: str, var_dir: Path) -> Runtime:
    """A Runtime over ``database_url`` with one source and the four feeds."""
    config = parse_config(
        {
            "sources": [{"name": "partner", "kind": "page", "url": "https://partner.example/a"}],
            "feeds": FEEDS,
            "endpoints": [],
        }
    )
    settings = Settings(database_url=database_url, var_dir=var_dir, public_url="https://hub.example")
    return Runtime(settings=settings, config=config, base_dir=var_dir)


def fill(rt: Runtime, count: int, stories: bool = False) -> None:
    """Store ``count`` ready articles (categories and tags cycling) through the ORM, as the worker does."""
    with rt.session() as session:
        session.execute(delete(Article))
        session.execute(delete(Story))
        source_id = sync_sources(session, rt.config)["partner"]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    batch = 2000
    for first in range(0, count, batch):
        with rt.session() as session:
            source = session.get(Source, source_id)
            for n in range(first, min(first + batch, count)):
                when = start + timedelta(minutes=n)
                session.add(
                    Article(
                        source=source,
                        url=f"https://partner.example/news/{n}",
                        canonical_url=f"https://partner.example/news/{n}",
                        status="ready",
                        title=f"Story {n}",
                        summary="A summary of the story.",
                        content_html=f"<p>Story {n} body.</p>",
                        published=when,
                        first_seen_at=when,
                        changed_at=when,
                        category=CATEGORIES[n % len(CATEGORIES)],
                        tags=[TAGS[n % len(TAGS)], TAGS[(n * 3 + 1) % len(TAGS)]],
                    )
                )
    if stories:
        group(rt)
    if rt.settings.effective_database_url.startswith("postgresql"):
        # Planner statistics, as autovacuum gathers them within a minute of a bulk load.
        with rt.session() as session:
            session.execute(text("ANALYZE"))


def group(rt: Runtime) -> None:
    """Every article in a story: of each ten, articles 0-2 report one (main: 0), the others one each."""
    with rt.session() as session:
        rows = session.execute(
            select(Article.id, Article.published, Article.first_seen_at).order_by(Article.id)
        )
        articles = list(rows)
    batch = 2000
    for first in range(0, len(articles), batch):
        with rt.session() as session:
            roles: list[dict[str, Any]] = []
            story: Story | None = None
            for n in range(first, min(first + batch, len(articles))):
                article_id, published, seen = articles[n]
                if story is None or n % 10 not in (1, 2):
                    story = Story(
                        title=f"Story {n}",
                        first_published=published,
                        entry_key=f"articles/{article_id}",
                        entry_day=seen.date(),
                    )
                    session.add(story)
                    session.flush()
                    roles.append({"id": article_id, "story_id": story.id, "story_role": "main"})
                else:
                    roles.append({"id": article_id, "story_id": story.id, "story_role": "version"})
            session.execute(update(Article), roles)


def measure(rt: Runtime, repeat: int, clock: Any = time.perf_counter) -> dict[tuple[str, str], float]:
    """Median ms per (feed, what): the current document's reads, and the newest full archive page.

    ``clock`` is wall time, or with ``--cpu`` this process's CPU time (SQLite runs in the process):
    on a machine other jobs keep busy, CPU time still compares two runs.
    """
    feeds = [rt.config.feed(f["name"]) for f in FEEDS]
    samples: dict[tuple[str, str], list[float]] = {}
    now = datetime.now(UTC)
    for _ in range(repeat):
        for feed in feeds:
            with rt.session() as session:
                began = clock()
                current_feed(rt, session, feed, now)
                samples.setdefault((feed.name, "current"), []).append((clock() - began) * 1000)
                pages = archive_count(session, feed) // archive_page_size(feed)
                began = clock()
                archive_page(rt, session, feed, max(pages, 1))
                samples.setdefault((feed.name, "archive"), []).append((clock() - began) * 1000)
                began = clock()
                render_all(*current_feed(rt, session, feed, now))
                samples.setdefault((feed.name, "render"), []).append((clock() - began) * 1000)
    return {key: statistics.median(values) for key, values in samples.items()}


def main() -> None:
    """Fill, measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL cluster")
    parser.add_argument("--cpu", action="store_true", help="CPU time of this process, not wall time")
    parser.add_argument("--stories", action="store_true", help="every article in a story (3 of 10 share one)")
    args = parser.parse_args()
    postgres = PostgresServer().start() if args.postgres else None
    with tempfile.TemporaryDirectory() as tmp:
        url = postgres.url() if postgres else args.database_url or f"sqlite:///{tmp}/bench.db"
        upgrade(url)
        rt = runtime(url, Path(tmp))
        load = os.getloadavg()[0]
        stories = "; stories: 3 of 10 articles share one" if args.stories else ""
        clock = "CPU" if args.cpu else "wall"
        where = f"database: {url.split(':')[0]}; load {load:.2f}"
        print(f"{where}; {clock} ms, medians of {args.repeat} rounds{stories}")
        head = ("articles", "feed", "items", "current ms", "x all", "archive ms", "x all", "render ms")
        print("{:>9} {:<8} {:>5} {:>11} {:>6} {:>11} {:>6} {:>10}".format(*head))
        for count in args.articles:
            fill(rt, count, args.stories)
            result = measure(rt, args.repeat, time.process_time if args.cpu else time.perf_counter)
            with rt.session() as session:
                for spec in FEEDS:
                    feed = rt.config.feed(spec["name"])
                    _, items = current_feed(rt, session, feed, datetime.now(UTC))
                    cur, arc = result[(feed.name, "current")], result[(feed.name, "archive")]
                    floor_cur, floor_arc = result[("all", "current")], result[("all", "archive")]
                    print(
                        f"{count:>9,} {feed.name:<8} {len(items):>5} {cur:>11.2f} {cur / floor_cur:>5.2f}x "
                        f"{arc:>11.2f} {arc / floor_arc:>5.2f}x {result[(feed.name, 'render')]:>10.2f}"
                    )
        print(f"load {os.getloadavg()[0]:.2f}")
    if postgres is not None:
        postgres.stop()


if __name__ == "__main__":
    main()
