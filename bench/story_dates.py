"""Story matching with the window on *event days* (worker/stories/dates.py) instead of publication days.

    .venv/bin/python bench/story_dates.py              # the dev set (about a minute on 2 busy cores)
    .venv/bin/python bench/story_dates.py --set DIR    # another labelled set in the same format

The matcher's rule 1 refuses a pair published more than ``window_days`` apart. Here the same Matcher
decides every pair of tests/fixtures/stories/ three times: as it is (publication days), with the window
on the days each article is about (its publication day and the dates its title and lead state), and with
the same on the title + first sentence only. match.py is not changed: this script swaps
``signals.calendar_days_apart`` for the time of each run. Prints P/R/F1, hard negatives merged,
cross-language pairs found, the same-story pairs the window alone refused (the decision without any
window says "same"), how many of those the event days let through, and event_days() CPU per article.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worker.stories import dates, signals  # noqa: E402
from worker.stories.evaluate import DevSet, Scores, score  # noqa: E402
from worker.stories.features import Features  # noqa: E402
from worker.stories.match import Decision, Matcher  # noqa: E402

Window = Callable[[Features, Features], float | None]


@contextmanager
def window_on(fn: Window) -> Iterator[None]:
    """Rule 1 of the matcher measures the distance with ``fn`` while inside."""
    original = signals.calendar_days_apart
    signals.calendar_days_apart = fn  # type: ignore[assignment]
    try:
        yield
    finally:
        signals.calendar_days_apart = original


def row(name: str, s: Scores) -> str:
    return (
        f"| {name} | {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} | "
        f"{s.hard_negatives_merged} of {s.hard_negatives} | {s.cross_language_found} of {s.cross_language} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=ROOT / "tests" / "fixtures" / "stories")
    args = parser.parse_args()
    dev = DevSet.load(args.set)
    pairs = dev.pairs()
    matcher = Matcher()
    window_days = matcher.config.window_days
    features = [matcher.features(a) for a in dev.articles]

    def days_for(sentences: int) -> tuple[dict[int, list[dates.DayRange]], list[float]]:
        found, cpu = {}, []
        for article, f in zip(dev.articles, features, strict=True):
            t0 = time.process_time()
            days = dates.event_days(
                f.title, article.get("content_text") or "", f.published, sentences=sentences
            )
            cpu.append((time.process_time() - t0) * 1000)
            found[id(f)] = days
        return found, cpu

    lead_days, lead_cpu = days_for(2)
    first_days, first_cpu = days_for(1)

    def on_days(found: dict[int, list[dates.DayRange]]) -> Window:
        return lambda a, b: dates.days_apart(found[id(a)], found[id(b)])

    def run(window: Window | None) -> dict[tuple[int, int], Decision]:
        with window_on(window or signals.calendar_days_apart):
            return {(i, j): matcher.decide_features(features[i], features[j]) for i, j in pairs}

    before = run(None)
    without_window = run(lambda a, b: 0.0)
    lead = run(on_days(lead_days))
    first = run(on_days(first_days))

    gold = {p for p in pairs if dev.same(*p)}
    refused = {p for p in gold if before[p].reason == "published too far apart" and without_window[p].same}
    negatives = dev.negative_pairs()

    def same(decisions: dict[tuple[int, int], Decision]) -> set[tuple[int, int]]:
        return {p for p, d in decisions.items() if d.same}

    print("| window on | precision | recall | F1 | hard negatives merged | cross-language found |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(row("publication days (today)", score(dev, same(before))))
    print(row("event days: title + first 2 sentences (<= 300 chars)", score(dev, same(lead))))
    print(row("event days: title + first sentence", score(dev, same(first))))
    print(row("no window at all (for reference)", score(dev, same(without_window))))
    print()
    apart = {p for p in gold if before[p].reason == "published too far apart"}
    print(f"same-story pairs published more than the window apart: {len(apart)}")
    for name, found in (("title + 2 sentences", lead_days), ("title + first sentence", first_days)):
        near = {
            (i, j)
            for i, j in apart
            if (dates.days_apart(found[id(features[i])], found[id(features[j])]) or 0) <= window_days
        }
        print(f"- {name}: event days bring {len(near)} of them within the window")
    print(f"same-story pairs refused only by the publication-day window: {len(refused)}")
    for name, decisions in (("title + 2 sentences", lead), ("title + first sentence", first)):
        let_through = {p for p in refused if decisions[p].same}
        new_false = (same(decisions) - same(before)) - gold
        print(
            f"- {name}: {len(let_through)} of them now found; new false merges {len(new_false)} "
            f"(hard negatives among them {len(new_false & negatives)})"
        )
        for i, j in sorted(new_false):
            print(f"    false: {dev.articles[i]['id']} + {dev.articles[j]['id']}")
    for i, j in sorted(refused):
        print(
            f"  refused: {dev.articles[i]['id']} ({dev.articles[i]['published'][:10]}) + "
            f"{dev.articles[j]['id']} ({dev.articles[j]['published'][:10]}): "
            f"event days {'found' if lead[(i, j)].same else 'still apart'}"
        )
    stated = sum(1 for days in lead_days.values() if len(days) > 1)
    print()
    print(f"articles with a stated event date besides publication: {stated} of {len(features)}")
    for name, cpu in (("title + 2 sentences", lead_cpu), ("title + first sentence", first_cpu)):
        print(
            f"event_days() CPU per article, {name}: "
            f"median {statistics.median(cpu):.3f} ms, max {max(cpu):.3f} ms"
        )


if __name__ == "__main__":
    main()
