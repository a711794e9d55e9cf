"""Story assignment cost against the size of the archive: candidate search + decision per new article.

    .venv/bin/python bench/story_scale.py                    # 1,000 and 100,000 stored articles
    .venv/bin/python bench/story_scale.py --sizes 1000 10000 --new 30

A synthetic archive is written in bulk on SQLite (``articles``, ``stories``, ``story_features``,
``story_keys``) as a hub that stores ``--per-day`` articles a day would hold it: 1,000 articles are 10
days of it, 100,000 about 2.7 years. Its texts are made of pseudo-words, proper names drawn from a
Zipf-distributed pool (so some names are in many articles, as "Cluj" would be) and numbers; the
features of 2,000 distinct texts are extracted and reused (one text recurs every 20 days, never twice
in one window). Then ``--new`` articles published on the archive's last day are assigned one by one
with :func:`worker.stories.assign.assign_article`, as the worker does: a quarter reprint a recent
archive article (near-verbatim), a quarter rewrite one (its names and numbers in other words), half
are news of their own. Printed per size: CPU per assignment (median, 90th percentile; the embedding
model included when a pair needs it), candidates decided per article (mean, max), how many joined.

The candidate search reads ``story_keys`` by key and day range only, so the cost follows the articles
in the window (``--per-day``), not the archive: the point of the table is that it stays flat.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.model import parse_config  # noqa: E402
from config.settings import Settings  # noqa: E402
from worker.runtime import Runtime  # noqa: E402
from worker.store.db import get_engine, upgrade  # noqa: E402
from worker.store.models import Article  # noqa: E402
from worker.stories import stored  # noqa: E402
from worker.stories.assign import assign_article  # noqa: E402
from worker.stories.embed import shared_embedder  # noqa: E402
from worker.stories.features import Features, extract  # noqa: E402
from worker.stories.keys import day_number, keys_of  # noqa: E402

TEMPLATES = 2_000
LAST_DAY = date(2026, 11, 30)
_SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables))


@dataclass
class Corpus:
    """Pseudo-words, a pool of names (Zipf: a few are everywhere) and texts made of them."""

    rng: random.Random
    vocabulary: list[str]
    names: list[str]
    weights: list[float]

    @classmethod
    def make(cls, seed: int = 18) -> Corpus:
        rng = random.Random(seed)
        vocabulary = [_word(rng, rng.randint(1, 4)) for _ in range(6_000)]
        names = sorted({_word(rng, rng.randint(2, 3)).capitalize() for _ in range(8_000)})
        rng.shuffle(names)
        weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(names))]
        return cls(rng, vocabulary, names, weights)

    def story(self) -> dict[str, Any]:
        """What one event is about: its names and numbers."""
        return {
            "names": self.rng.choices(self.names, self.weights, k=self.rng.randint(3, 6)),
            "numbers": [str(self.rng.randint(10, 99_999)) for _ in range(self.rng.randint(1, 4))],
        }

    def text(self, about: dict[str, Any], words: int = 180) -> tuple[str, str]:
        """A title and a body about ``about``, in words of its own."""
        rng = self.rng
        names, numbers = about["names"], about["numbers"]
        title = " ".join([names[0], *rng.sample(self.vocabulary, 5), names[-1]])
        sentences = []
        for _ in range(words // 12):
            sentence = rng.sample(self.vocabulary, 11)
            sentence.insert(rng.randint(1, 10), rng.choice(names))
            if rng.random() < 0.3:
                sentence.insert(rng.randint(1, 10), rng.choice(numbers))
            sentences.append(" ".join(sentence).capitalize() + ".")
        return title, " ".join(sentences)


def _sql_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")


def build_archive(url: str, size: int, per_day: int, corpus: Corpus) -> list[tuple[dict[str, Any], str, str]]:
    """Write ``size`` ready articles, one story each, with features and keys; return the templates."""
    templates: list[tuple[dict[str, Any], str, str]] = []
    features: list[Features] = []
    for _ in range(min(TEMPLATES, size)):
        about = corpus.story()
        title, body = corpus.text(about)
        templates.append((about, title, body))
        features.append(extract({"title": title, "content_text": body, "language": "en"}))
    blobs = [stored.dump(f) for f in features]
    keys = [keys_of(f) for f in features]
    engine = get_engine(url)
    raw: Any = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "INSERT INTO sources (id, name, kind, url, created_at, crawl_count, error_count,"
            " consecutive_errors) VALUES (1, 'archive', 'push', '', ?, 0, 0, 0)",
            (_sql_time(datetime.now(UTC)),),
        )

        def when(i: int) -> datetime:
            day = LAST_DAY - timedelta(days=(size - 1 - i) // per_day)
            return datetime(day.year, day.month, day.day, 8, tzinfo=UTC) + timedelta(
                seconds=(i % per_day) * 300
            )

        cur.executemany(
            "INSERT INTO stories (id, title, first_published, entry_key, entry_day, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    i + 1,
                    templates[i % len(templates)][1],
                    _sql_time(when(i)),
                    f"articles/{i + 1}",
                    when(i).date().isoformat(),
                    _sql_time(when(i)),
                    _sql_time(when(i)),
                )
                for i in range(size)
            ),
        )
        cur.executemany(
            "INSERT INTO articles (id, source_id, url, canonical_url, status, title, text, language,"
            " published, authors, tags, attempts, first_seen_at, last_seen_at, changed_at, backfill,"
            " story_id, story_role)"
            " VALUES (?, 1, ?, ?, 'ready', ?, ?, 'en', ?, '[]', '[]', 1, ?, ?, ?, 0, ?, 'main')",
            (
                (
                    i + 1,
                    f"https://archive.example/{i + 1}",
                    f"https://archive.example/{i + 1}",
                    templates[i % len(templates)][1],
                    templates[i % len(templates)][2],
                    _sql_time(when(i)),
                    _sql_time(when(i)),
                    _sql_time(when(i)),
                    _sql_time(when(i)),
                    i + 1,
                )
                for i in range(size)
            ),
        )
        cur.executemany(
            "INSERT INTO story_features (article_id, version, data) VALUES (?, ?, ?)",
            ((i + 1, stored.VERSION, blobs[i % len(blobs)]) for i in range(size)),
        )
        cur.executemany(
            "INSERT INTO story_keys (key, day, article_id) VALUES (?, ?, ?)",
            ((k, day_number(when(i)), i + 1) for i in range(size) for k in keys[i % len(keys)]),
        )
        raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return [templates[i % len(templates)] for i in range(max(0, size - per_day), size)]


def measure(size: int, new: int, per_day: int, seed: int = 18) -> dict[str, Any]:
    """Build an archive of ``size`` articles and assign ``new`` articles; the figures."""
    corpus = Corpus.make(seed)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'stories.db'}"
        upgrade(url)
        started = time.monotonic()
        recent = build_archive(url, size, per_day, corpus)
        built = time.monotonic() - started
        config = parse_config(
            {"sources": [{"name": "archive", "kind": "push"}], "feeds": [{"name": "all", "title": "All"}]}
        )
        settings = Settings(
            database_url=url,
            redis_url="redis://127.0.0.1:1/0",
            var_dir=Path(folder),
            public_url="http://b.test",
        )
        rt = Runtime(settings=settings, config=config, base_dir=Path(folder))
        cpu: list[float] = []
        candidates: list[int] = []
        joined = 0
        for n in range(new):
            kind = n % 4
            if kind in (0, 1) and recent:
                about, title, body = corpus.rng.choice(recent)
                if kind == 1:  # a rewrite: the same names and numbers, other words
                    title, body = corpus.text(about)
            else:
                title, body = corpus.text(corpus.story())
            published = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 18, tzinfo=UTC)
            with rt.session() as session:
                row = Article(
                    source_id=1,
                    url=f"https://new.example/{n}",
                    canonical_url=f"https://new.example/{n}",
                    status="ready",
                    title=title,
                    text=body,
                    language="en",
                    published=published,
                    first_seen_at=published,
                )
                session.add(row)
                session.flush()
                article_id = row.id
            before = time.process_time()
            placed = assign_article(rt, article_id)
            cpu.append((time.process_time() - before) * 1000)
            candidates.append(placed.candidates)
            joined += placed.joined
        get_engine(url).dispose()
    cpu.sort()
    return {
        "size": size,
        "built_s": built,
        "median_ms": statistics.median(cpu),
        "p90_ms": cpu[int(0.9 * (len(cpu) - 1))],
        "candidates_mean": statistics.mean(candidates),
        "candidates_max": max(candidates),
        "joined": joined,
        "new": new,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of :func:`measure` rows."""
    lines = [
        "| stored articles | CPU per assignment, median | p90 | candidates per article (mean / max) "
        "| joined |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']:,} | {r['median_ms']:.1f} ms | {r['p90_ms']:.1f} ms | "
            f"{r['candidates_mean']:.1f} / {r['candidates_max']} | {r['joined']} of {r['new']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--new", type=int, default=40, help="articles assigned per size (default 40)")
    parser.add_argument("--per-day", type=int, default=100, help="archive articles a day (default 100)")
    args = parser.parse_args(argv)
    shared_embedder().embed("warm up")  # the model loads once per worker process, not per article
    rows = []
    for size in args.sizes:
        found = measure(size, args.new, args.per_day)
        print(f"{size:,} stored articles: archive written in {found['built_s']:.1f} s", file=sys.stderr)
        rows.append(found)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
