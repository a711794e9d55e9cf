"""Story matching on the labelled dev set: each signal alone, the lexical baseline and the combination.

    .venv/bin/python bench/stories.py              # the table (about a minute on 2 busy cores)
    .venv/bin/python bench/stories.py --set DIR    # another labelled set in the same format

Prints pairwise precision / recall / F1 over every pair of articles in tests/fixtures/stories/ (a pair
is "same" when both carry the same ``story``), hard negatives merged and cross-language pairs found;
then CPU per article (features, embedding included) and per pair, the model's resident memory, and
`syndicate story match` pairs/s on pairs of distinct articles, each run as a user would.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.stories import signals  # noqa: E402
from worker.stories.embed import Embedder  # noqa: E402
from worker.stories.evaluate import (  # noqa: E402
    DevSet,
    Scores,
    best_threshold,
    combined,
    score,
    signal_values,
    tfidf_baseline,
)
from worker.stories.features import LEAD_CHARS  # noqa: E402
from worker.stories.match import MatchConfig, Matcher  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def row(name: str, s: Scores) -> str:
    t = f"{s.threshold:.3f}" if s.threshold is not None else "—"
    return (
        f"| {name} | {t} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | "
        f"{s.hard_negatives_merged} of {s.hard_negatives} | {s.cross_language_found} of {s.cross_language} |"
    )


def cli_pairs_per_second(dev: DevSet) -> tuple[float, int]:
    """`syndicate story match` on every same-story pair, each article made new for its pair (so every
    line brings two articles the process has not seen, and most need the model: the costly case)."""
    lines = []
    for n, (i, j) in enumerate(p for p in dev.pairs() if dev.same(*p)):
        a, b = (dict(dev.articles[k], url=f"{dev.articles[k].get('url')}?pair={n}") for k in (i, j))
        lines.append(json.dumps({"a": a, "b": b}))
    command = [str(Path(sys.executable).with_name("syndicate")), "story", "match"]
    start = time.perf_counter()
    stdin = "\n".join(lines) + "\n"
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or len(result.stdout.splitlines()) != len(lines):
        raise SystemExit(f"story match failed: {result.stderr}")
    return len(lines) / elapsed, len(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", type=Path, default=ROOT / "tests/fixtures/stories", help="the labelled set")
    args = parser.parse_args(argv)
    dev = DevSet.load(args.set)
    pairs = dev.pairs()
    stories = len({a["story"] for a in dev.articles})
    same = sum(dev.same(*p) for p in pairs)
    print(
        f"{len(dev.articles)} articles, {stories} stories, {len(pairs)} pairs ({same} same), "
        f"{len(dev.negative_pairs())} hard negatives\n"
    )

    before = rss_mb()
    embedder = Embedder()
    matcher = Matcher(embedder=embedder)
    feature_ms, embed_ms = [], []
    features = []
    for article in dev.articles:
        t0 = time.process_time()
        found = matcher.features(article)
        t1 = time.process_time()
        matcher.embed(found)
        t2 = time.process_time()
        features.append(found)
        feature_ms.append((t1 - t0) * 1000)
        embed_ms.append((t2 - t1) * 1000)
    model_rss = rss_mb() - before

    values = signal_values(dev, features, pairs)
    print("| method | threshold | precision | recall | F1 | hard negatives merged | cross-language found |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(row("TF-IDF cosine, title + text (baseline)", best_threshold(dev, tfidf_baseline(dev))))
    for name, by_pair in values.items():
        print(row(f"{name} alone", best_threshold(dev, by_pair)))
    window = MatchConfig().window_days
    within = {
        p for p in pairs if (signals.calendar_days_apart(features[p[0]], features[p[1]]) or 0) <= window
    }
    print(row(f"date window ±{window:g} days alone", score(dev, within)))
    t0 = time.process_time()
    combination = combined(dev, matcher)
    pair_ms = (time.process_time() - t0) * 1000 / len(pairs)
    print(row("combination without embeddings", combined(dev, Matcher(use_embeddings=False))))
    print(row("**combination** (`story match`)", combination))

    rate, count = cli_pairs_per_second(dev)
    print()
    print("| cost | value |")
    print("| --- | --- |")
    print(f"| features per article, CPU median (max) | {_ms(feature_ms)} |")
    print(f"| embedding per article (title + {LEAD_CHARS} chars), CPU median (max) | {_ms(embed_ms)} |")
    total = [f + e for f, e in zip(feature_ms, embed_ms, strict=True)]
    print(f"| per article, features + embedding, CPU median | {statistics.median(total):.1f} ms |")
    print(f"| per pair, decision on cached features, CPU mean | {pair_ms:.2f} ms |")
    needed = matcher.stats["pairs that needed the model"]
    print(f"| pairs that needed the model (the others decided without it) | {needed} of {len(pairs)} |")
    print(f"| model resident memory (RSS growth after loading and embedding) | {model_rss:.0f} MB |")
    what = f"`syndicate story match`, {count} same-story pairs, every article new, model load included"
    print(f"| {what} | {rate:.1f} pairs/s |")
    return 0


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ms ({max(values):.1f} ms)"


if __name__ == "__main__":
    sys.exit(main())
