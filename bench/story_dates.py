"""Story matching with the window on *event days* (worker/stories/dates.py) instead of publication days.

    .venv/bin/python bench/story_dates.py              # the dev set (about a minute on 2 busy cores)
    .venv/bin/python bench/story_dates.py --set DIR    # another labelled set in the same format

The matcher's rule 1 refuses a pair published more than ``window_days`` apart. Here the same Matcher
decides every pair of tests/fixtures/stories/ several times: on publication days, with the window
on the days each article is about (its publication day and the dates its title and lead state), and with
the same on the title + first sentence only (the matcher as it is: ``Features.days``). This script
swaps ``signals.event_days_apart`` (rule 1's distance) for the time of each run. Prints P/R/F1, hard
negatives merged, cross-language pairs found, the same-story pairs the window alone refused (the decision
without any window says "same"), how many of those the event days let through, and event_days() CPU
per article.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.normalize import normalize  # noqa: E402
from worker.stories import dates, signals  # noqa: E402
from worker.stories.evaluate import DevSet, Scores, score  # noqa: E402
from worker.stories.features import Features  # noqa: E402
from worker.stories.match import Decision, Matcher  # noqa: E402

Window = Callable[[Features, Features], float | None]


@contextmanager
def window_on(fn: Window, *, no_window: bool = False) -> Iterator[None]:
    """Rule 1 of the matcher measures the distance with ``fn`` while inside; ``no_window``: rule 4
    (a pair published far apart needs a copy or a quote) is off too."""
    original, publication = signals.event_days_apart, signals.calendar_days_apart
    signals.event_days_apart = fn  # type: ignore[assignment]
    if no_window:
        signals.calendar_days_apart = lambda a, b: 0
    try:
        yield
    finally:
        signals.event_days_apart, signals.calendar_days_apart = original, publication


def row(name: str, s: Scores) -> str:
    return (
        f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | "
        f"{s.hard_negatives_merged} of {s.hard_negatives} | {s.cross_language_found} of {s.cross_language} |"
    )


SEED = ROOT / "worker" / "demo"
SEED_PAGES = (
    "rawabi-foundation-signs-cluj-memorandum",  # 28 January 2019
    "romanian-palestinian-tech-bridge",  # 4 March
    "cluj-it-cluster-rawabi-tech-hub-partnership",  # 6 March: "In the end of January, ..."
)
# name -> event_days() keyword arguments
VARIANTS: dict[str, dict[str, Any]] = {
    "event days: title + first 2 sentences (<= 300 chars)": {"sentences": 2},
    "event days: title + first sentence": {"sentences": 1},
    "event days: title + 2 sentences, no whole months": {"sentences": 2, "whole_months": False},
    "event days: title + first sentence, no whole months": {"sentences": 1, "whole_months": False},
}


def seed_articles() -> list[dict[str, Any]]:
    """The seed's three demo pages, read as `syndicate scrape --saved FILE URL` reads them."""
    return [
        normalize((SEED / f"{name}.html").read_bytes(), f"http://127.0.0.1:8000/demo/{name}.html").to_dict()
        for name in SEED_PAGES
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=ROOT / "tests" / "fixtures" / "stories")
    args = parser.parse_args()
    dev = DevSet.load(args.set)
    pairs = dev.pairs()
    matcher = Matcher()
    window_days = matcher.config.window_days
    features = [matcher.features(a) for a in dev.articles]

    def days_for(
        articles: list[dict[str, Any]], found_features: list[Features], **options: Any
    ) -> tuple[dict[int, list[dates.DayRange]], list[float]]:
        found, cpu = {}, []
        for article, f in zip(articles, found_features, strict=True):
            t0 = time.process_time()
            days = dates.event_days(f.title, article.get("content_text") or "", f.published, **options)
            cpu.append((time.process_time() - t0) * 1000)
            found[id(f)] = days
        return found, cpu

    def on_days(found: dict[int, list[dates.DayRange]]) -> Window:
        return lambda a, b: dates.days_apart(found[id(a)], found[id(b)])

    def run(window: Window | None, *, no_window: bool = False) -> dict[tuple[int, int], Decision]:
        with window_on(window or signals.event_days_apart, no_window=no_window):
            return {(i, j): matcher.decide_features(features[i], features[j]) for i, j in pairs}

    def same(decisions: dict[tuple[int, int], Decision]) -> set[tuple[int, int]]:
        return {p for p, d in decisions.items() if d.same}

    def on_publication_days(a: Features, b: Features) -> float | None:
        found = signals.calendar_days_apart(a, b)
        return None if found is None else float(found)

    before = run(on_publication_days)
    wired = run(None)
    without_window = run(lambda a, b: 0.0, no_window=True)
    variants = {}
    for name, options in VARIANTS.items():
        found, cpu = days_for(dev.articles, features, **options)
        variants[name] = (found, cpu, run(on_days(found)))

    gold = {p for p in pairs if dev.same(*p)}
    apart = {p for p in gold if before[p].reason == "published too far apart"}
    refused = {p for p in apart if without_window[p].same}
    negatives = dev.negative_pairs()

    print("| window on | precision | recall | F1 | hard negatives merged | cross-language found |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(row("publication days (before Features.days)", score(dev, same(before))))
    print(row("the matcher as it is (Features.days)", score(dev, same(wired))))
    for name, (_, _, decisions) in variants.items():
        print(row(name, score(dev, same(decisions))))
    print(row("no window at all (for reference)", score(dev, same(without_window))))
    print()
    print(f"same-story pairs published more than {window_days:g} days apart: {len(apart)}; refused by the")
    print(f"window alone (the decision without any window says same): {len(refused)}")
    print()
    print("| window on | apart pairs brought within | of them found | new false merges (hard negatives) |")
    print("| --- | --- | --- | --- |")
    for name, (found, _, decisions) in variants.items():
        near = {
            (i, j)
            for i, j in apart
            if (dates.days_apart(found[id(features[i])], found[id(features[j])]) or 0) <= window_days
        }
        new_false = (same(decisions) - same(before)) - gold
        wrong = ", ".join(f"{dev.articles[i]['id']}+{dev.articles[j]['id']}" for i, j in sorted(new_false))
        print(
            f"| {name} | {len(near)} of {len(apart)} | {len({p for p in apart if decisions[p].same})} | "
            f"{len(new_false)} ({len(new_false & negatives)}): {wrong or '-'} |"
        )
    print()
    print("Seed demo pages (28 January, 4 March, 6 March), as scraped:")
    seed = seed_articles()
    seed_features = [matcher.features(a) for a in seed]
    seed_days, _ = days_for(seed, seed_features)
    for i, j in ((0, 2), (1, 2), (0, 1)):
        a, b = seed_features[i], seed_features[j]
        apart_days = dates.days_apart(seed_days[id(a)], seed_days[id(b)])
        with window_on(on_days(seed_days)):
            on_event = matcher.decide_features(a, b)
        with window_on(lambda x, y: 0.0, no_window=True):
            unbounded = matcher.decide_features(a, b)
        print(
            f"- {SEED_PAGES[i]} + {SEED_PAGES[j]}: event days {apart_days:g} apart; decision on event days: "
            f"{on_event.same} ({on_event.reason}, score {on_event.score}); without a window: "
            f"{unbounded.same} (score {unbounded.score})"
        )
    print()
    for name, (found, cpu, _) in variants.items():
        stated = sum(1 for days in found.values() if len(days) > 1)
        print(
            f"{name}: {stated} of {len(features)} articles state an event date; event_days() CPU per "
            f"article median {statistics.median(cpu):.3f} ms, max {max(cpu):.3f} ms"
        )


if __name__ == "__main__":
    main()
