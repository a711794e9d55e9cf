"""Story matching on the labelled dev set: each signal alone, the lexical baseline and the combination.

    .venv/bin/python bench/stories.py              # the table (about a minute on 2 busy cores)
    .venv/bin/python bench/stories.py --set DIR    # another labelled set in the same format
    .venv/bin/python bench/stories.py --pairs 5000 # a larger uniform batch for `story match`
    .venv/bin/python bench/stories.py --profile    # and where the CPU goes (cProfile, top functions)
    .venv/bin/python bench/stories.py --scale 1000 100000   # assignment cost by archive size (default)

Prints pairwise precision / recall / F1 over every pair of articles in tests/fixtures/stories/ (a pair
is "same" when both carry the same ``story``), hard negatives merged and cross-language pairs found;
then CPU per article (features, embedding included) and per pair, CPU per new article decided against
its candidates as the worker does it, the model's resident memory, and `syndicate story match` pairs/s
on pairs of distinct articles, each run as a user would (model load included, and excluded by
subtracting a run on empty input), the last one without any network.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
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
from worker.stories.features import LEAD_CHARS, Features, extract  # noqa: E402
from worker.stories.match import MatchConfig, Matcher  # noqa: E402

CANDIDATES = 10  # per new article: what the candidate index hands the decision, at most


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


@dataclass(frozen=True)
class Run:
    """One `syndicate story match` process: its wall time and CPU (user + system, every thread)."""

    pairs: int
    wall: float
    cpu: float

    def rate(self, startup: Run | None = None) -> float:
        wall = self.wall - (startup.wall if startup else 0.0)
        return self.pairs / wall if wall > 0 else float("nan")


def story_match(lines: list[str], *, offline: bool = False) -> Run:
    """Run `syndicate story match` as typed on ``lines``; ``offline``: in a network namespace of its
    own (no interface but loopback, and that down), so anything fetched at run time would fail."""
    command = [str(Path(sys.executable).with_name("syndicate")), "story", "match"]
    if offline:
        command = ["unshare", "--net", *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    stdin = "".join(line + "\n" for line in lines)
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0 or len(result.stdout.splitlines()) != len(lines):
        raise SystemExit(f"story match failed ({result.returncode}): {result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(len(lines), elapsed, cpu)


def fresh_pairs(dev: DevSet, pairs: list[tuple[int, int]]) -> list[str]:
    """JSON lines of ``pairs``, each article made new for its pair (its URL, so `story match` sees an
    article it has not seen: features extracted and, where a pair needs it, embedded anew; nothing
    caches by text)."""
    lines = []
    for n, (i, j) in enumerate(pairs):
        a, b = (dict(dev.articles[k], url=f"{dev.articles[k].get('url')}?pair={n}") for k in (i, j))
        lines.append(json.dumps({"a": a, "b": b}))
    return lines


def shared_keys(a: Features, b: Features) -> int:
    """What the store's candidate index would find them sharing: names, numbers, links."""
    return len(a.entities & b.entities) + len(a.numbers & b.numbers) + len(a.links & b.links)


def per_new_article(
    dev: DevSet, stored: list[Features], embedder: Embedder, *, in_window: bool
) -> tuple[list[float], int, list[int]]:
    """CPU per new article as the worker spends it: its features extracted, then decided against its
    (at most :data:`CANDIDATES`) candidates, whose features come stored with their embeddings; the new
    article is embedded only when a pair needs it (one model thread, as in a worker).

    ``in_window``: the candidates are the other articles published within the window that share the
    most keys (what the index returns). Otherwise the :data:`CANDIDATES` articles sharing the most
    keys, their dates moved onto the new article's, so that the date rule decides nothing (the costly
    case). Returns the CPU ms per article, how many articles needed the model, the candidate counts.
    """
    window = MatchConfig().window_days
    cpu_ms, counts = [], []
    needed = 0
    for i, article in enumerate(dev.articles):
        new = stored[i]
        others = [
            (shared_keys(new, stored[j]), j)
            for j in range(len(stored))
            if j != i and (not in_window or (signals.event_days_apart(new, stored[j]) or 0) <= window)
        ]
        others.sort(key=lambda item: (-item[0], item[1]))
        candidates = [stored[j] for _, j in others[:CANDIDATES]]
        if not in_window:
            candidates = [replace(c, published=new.published, days=new.days) for c in candidates]
        matcher = Matcher(embedder=embedder)
        t0 = time.process_time()
        found = extract(article)
        for candidate in candidates:
            matcher.decide_features(found, candidate)
        cpu_ms.append((time.process_time() - t0) * 1000)
        needed += matcher.stats["articles embedded"] > 0
        counts.append(len(candidates))
    return cpu_ms, needed, counts


def profile(dev: DevSet, embedder: Embedder, pairs: list[tuple[int, int]]) -> str:
    """The top functions (own time) of deciding ``pairs`` on a fresh matcher: extraction, embedding and
    decisions as `story match` spends them (one model thread)."""
    matcher = Matcher(embedder=embedder)
    profiler = cProfile.Profile()
    profiler.enable()
    matcher.decide_many([(dev.articles[i], dev.articles[j]) for i, j in pairs])
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", type=Path, default=ROOT / "tests/fixtures/stories", help="the labelled set")
    parser.add_argument(
        "--pairs", type=int, default=2000, help="pairs of the uniform `story match` batch (default 2000)"
    )
    parser.add_argument("--profile", action="store_true", help="print where the CPU goes (cProfile)")
    parser.add_argument(
        "--scale",
        type=int,
        nargs="*",
        default=[1_000, 100_000],
        help="archive sizes for the assignment table (bench/story_scale.py; none: skip it)",
    )
    parser.add_argument("--scale-new", type=int, default=40, help="articles assigned per archive size")
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
    within = {p for p in pairs if (signals.event_days_apart(features[p[0]], features[p[1]]) or 0) <= window}
    print(row(f"date window ±{window:g} days alone", score(dev, within)))
    t0 = time.process_time()
    combination = combined(dev, matcher)
    pair_ms = (time.process_time() - t0) * 1000 / len(pairs)
    print(row("combination without embeddings", combined(dev, Matcher(use_embeddings=False))))
    print(row("**combination** (`story match`)", combination))

    in_window, needed_window, counts = per_new_article(dev, features, embedder, in_window=True)
    costly, needed_costly, _ = per_new_article(dev, features, embedder, in_window=False)

    same_pairs = [p for p in pairs if dev.same(*p)]
    uniform = random.Random(18).sample(pairs, min(args.pairs, len(pairs)))
    startup = story_match([])
    costly_run = story_match(fresh_pairs(dev, same_pairs))
    uniform_run = story_match(fresh_pairs(dev, uniform))
    offline = story_match(fresh_pairs(dev, same_pairs[:8]), offline=True) if shutil.which("unshare") else None

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
    n = len(dev.articles)
    print(
        f"| **new article** vs its candidates in the window (median {statistics.median(counts):g}, "
        f"max {max(counts)}): features + embedding if needed + decisions, CPU median (p90, max) | "
        f"{_ms(in_window, p90=True)} |"
    )
    print(f"| new articles that needed the model (candidates in the window) | {needed_window} of {n} |")
    print(
        f"| new article vs the {CANDIDATES} articles sharing most keys, dates moved into the window, "
        f"CPU median (p90, max) | {_ms(costly, p90=True)} |"
    )
    print(f"| new articles that needed the model (dates moved into the window) | {needed_costly} of {n} |")
    print(f"| model resident memory (RSS growth after loading and embedding) | {model_rss:.0f} MB |")
    cores = os.cpu_count()
    print(
        f"| `syndicate story match` on empty input (imports, model load): wall, CPU | "
        f"{startup.wall:.2f} s, {startup.cpu:.2f} s |"
    )
    for what, run in (
        (f"{len(same_pairs)} same-story pairs, every article new (the costly case)", costly_run),
        (f"{len(uniform)} pairs drawn uniformly from the set's pairs, every article new", uniform_run),
    ):
        print(
            f"| `story match`, {what}: pairs/s with model load (without), CPU per pair, {cores} cores | "
            f"{run.rate():.1f} ({run.rate(startup):.1f}) pairs/s, {run.cpu * 1000 / run.pairs:.0f} ms |"
        )
    if offline is not None:
        print(f"| `story match` without network (`unshare --net`), {offline.pairs} pairs | answered |")
    if args.scale:
        # The pipeline's side in the same run: a new article assigned to a story in a stored archive
        # (candidate lookup in story_keys, decisions, writes), by archive size.
        print()
        scale = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "story_scale.py"),
                "--sizes",
                *map(str, args.scale),
                "--new",
                str(args.scale_new),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        print(scale.stdout.rstrip())
    if args.profile:
        print()
        print(f"Where the CPU of the {len(same_pairs)} same-story pairs goes (fresh matcher, one thread):")
        print(profile(dev, Embedder(), same_pairs))
    return 0


def _ms(values: list[float], *, p90: bool = False) -> str:
    spread = f"{statistics.quantiles(values, n=10)[-1]:.1f} ms, " if p90 else ""
    return f"{statistics.median(values):.1f} ms ({spread}{max(values):.1f} ms)"


if __name__ == "__main__":
    sys.exit(main())
