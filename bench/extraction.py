"""Article-extraction benchmark: ``worker.normalize`` against the 181 pages of the public
scrapinghub/article-extraction-benchmark data set (kept outside the repository, in
``../shared/benchmarks/article-extraction/``), with trafilatura side by side when it is installed.

Scoring follows that data set's README: tokens are runs of ``\\w``; each text becomes the multiset of
its 4-token shingles; per page precision = TP/(TP+FP) and recall = TP/(TP+FN) (a page with FP = FN = 0
scores 1.0 for both; pages with an empty denominator are skipped); corpus precision and recall are the
means over pages and F1 is the harmonic mean of those two means. Accuracy is the share of pages whose
token list equals the truth's. ± is the standard deviation of F1 over 1,000 bootstrap resamples.

Timing is parse + extract of the page bytes, one page at a time, extractors interleaved page by page so
that machine noise hits them alike. "vs fast" is pages/s relative to trafilatura ``fast=True`` (the goal is
>= 1.00x). Below the table, the per-stage profile of our normalizer in the same run.
Run from the repository root::

    .venv/bin/python bench/extraction.py [--data DIR] [--limit N] [--no-peer]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.errors import NormalizeError
from worker.normalize import normalize
from worker.normalize.core import PROFILE

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "article-extraction"
_TOKEN = re.compile(r"\w+")

Extractor = Callable[[bytes, str], str]


def tokens(text: str) -> list[str]:
    """Maximal runs of Unicode word characters, case kept."""
    return _TOKEN.findall(text)


def shingles(words: list[str], size: int = 4) -> Counter[tuple[str, ...]]:
    """Multiset of consecutive ``size``-token windows; 1-3 tokens give one shingle, none give none."""
    if not words:
        return Counter()
    if len(words) < size:
        return Counter([tuple(words)])
    return Counter(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


@dataclass
class PageScore:
    """Per-page precision/recall (None when skipped) and exact-match flag."""

    precision: float | None
    recall: float | None
    exact: bool


def score_page(truth: str, prediction: str) -> PageScore:
    """Score one page with the shingle method of the benchmark README."""
    truth_tokens, predicted_tokens = tokens(truth), tokens(prediction)
    t, p = shingles(truth_tokens), shingles(predicted_tokens)
    tp = sum((t & p).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    if fp == 0 and fn == 0:
        return PageScore(1.0, 1.0, truth_tokens == predicted_tokens)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    return PageScore(precision, recall, truth_tokens == predicted_tokens)


def corpus(scores: list[PageScore]) -> tuple[float, float, float, float]:
    """(F1, precision, recall, accuracy) of a set of page scores."""
    precisions = [s.precision for s in scores if s.precision is not None]
    recalls = [s.recall for s in scores if s.recall is not None]
    precision = statistics.fmean(precisions) if precisions else 0.0
    recall = statistics.fmean(recalls) if recalls else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(s.exact for s in scores) / len(scores) if scores else 0.0
    return f1, precision, recall, accuracy


def bootstrap_std(scores: list[PageScore], rounds: int = 1000, seed: int = 0) -> float:
    """Standard deviation of corpus F1 over bootstrap resamples of the pages."""
    rng = random.Random(seed)
    values = [corpus(rng.choices(scores, k=len(scores)))[0] for _ in range(rounds)]
    return statistics.pstdev(values)


@dataclass
class Run:
    """Timings, scores and failures of one extractor over the corpus."""

    name: str
    extract: Extractor
    seconds: list[float] = field(default_factory=list)
    scores: list[PageScore] = field(default_factory=list)
    failures: int = 0


def ours(document: bytes, url: str) -> str:
    """worker.normalize: the article's plain text (empty when it finds no article)."""
    try:
        return normalize(document, url).text
    except NormalizeError:
        return ""


def load_peers() -> tuple[list[tuple[str, Extractor]], str]:
    """trafilatura's default and ``fast=True`` extractions if it is importable, and a note."""
    try:
        import trafilatura
    except ImportError:
        return [], "trafilatura not installed (.venv/bin/pip install -e '.[bench]') - columns skipped"

    def default(document: bytes, url: str) -> str:
        return trafilatura.extract(document, url=url) or ""

    def fast(document: bytes, url: str) -> str:
        return trafilatura.extract(document, url=url, fast=True) or ""

    version = getattr(trafilatura, "__version__", "?")
    return [(f"trafilatura {version} default", default), (f"trafilatura {version} fast", fast)], (
        f"trafilatura {version}"
    )


def print_profile(pages: int, total: float) -> None:
    """Per-stage seconds of our normalizer (from ``worker.normalize.core.PROFILE``), share and ms per page."""
    print()
    print("Per-stage profile of worker.normalize (timed in the same run):")
    print()
    print("| stage | ms per page | share |")
    print("|---|---|---|")
    stages = PROFILE.seconds
    for name, seconds in stages.items():
        print(f"| {name} | {seconds * 1000 / pages:.2f} | {seconds / total:.0%} |")
    rest = total - sum(stages.values())
    print(f"| (outside the stages) | {rest * 1000 / pages:.2f} | {rest / total:.0%} |")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="benchmark directory")
    parser.add_argument("--limit", type=int, default=0, help="only the first N pages (0 = all)")
    parser.add_argument("--no-peer", action="store_true", help="do not run trafilatura")
    args = parser.parse_args(argv)

    truth_file = args.data / "ground-truth.json"
    truth: dict[str, dict[str, str]] = json.loads(truth_file.read_text(encoding="utf-8"))
    ids = sorted(truth)
    if args.limit:
        ids = ids[: args.limit]
    pages = [(key, gzip.decompress((args.data / "html" / f"{key}.html.gz").read_bytes())) for key in ids]

    runs = [Run("worker.normalize", ours)]
    notes = []
    if not args.no_peer:
        peers, note = load_peers()
        notes.append(note)
        runs.extend(Run(name, extract) for name, extract in peers)

    for run in runs:  # warm-up: imports and lazy initialisation are not the page's cost
        run.extract(pages[0][1], truth[pages[0][0]]["url"])
    PROFILE.enabled = True

    for key, document in pages:
        url = truth[key]["url"]
        for run in runs:
            started = time.perf_counter()
            try:
                text = run.extract(document, url)
            except Exception as error:  # a crash on one page is a data point, not the end of the run
                print(f"{run.name} failed on {key}: {error!r}", file=sys.stderr)
                text = ""
                run.failures += 1
            run.seconds.append(time.perf_counter() - started)
            run.scores.append(score_page(truth[key]["articleBody"], text))

    print(f"{len(pages)} pages from {args.data}")
    for note in notes:
        print(f"peer: {note}")
    print()
    print(
        "| extractor | pages | median ms | p95 ms | pages/s | vs fast | F1 | precision | recall | accuracy "
        "| failures |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    reference = next((r for r in runs if r.name.endswith(" fast")), runs[0])
    reference_rate = len(reference.seconds) / sum(reference.seconds)
    for run in runs:
        f1, precision, recall, accuracy = corpus(run.scores)
        ordered = sorted(run.seconds)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        median_ms = statistics.median(ordered) * 1000
        rate = len(ordered) / sum(ordered)
        print(
            f"| {run.name} | {len(run.seconds)} | {median_ms:.1f} | {p95 * 1000:.1f} | {rate:.1f} | "
            f"{rate / reference_rate:.2f}x | "
            f"{f1:.3f} ± {bootstrap_std(run.scores):.3f} | {precision:.3f} | {recall:.3f} | {accuracy:.3f} | "
            f"{run.failures} |"
        )
    print_profile(len(pages), sum(runs[0].seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
