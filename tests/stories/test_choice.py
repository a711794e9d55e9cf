"""The main-version rule: priority, then preferred language, then earliest, then lowest id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from worker.stories.choice import language_rank, version_order


@dataclass
class V:
    id: int
    language: str | None
    published: datetime | None
    first_seen_at: datetime = datetime(2019, 3, 1, tzinfo=UTC)


def main_of(versions: list[tuple[V, int]], languages: list[str]) -> int:
    return min(versions, key=lambda pair: version_order(pair[0], pair[1], languages))[0].id


def test_priority_wins_over_language_and_date() -> None:
    early_en = V(1, "en", datetime(2019, 3, 5, tzinfo=UTC))
    late_ro_hub = V(2, "ro", datetime(2019, 3, 7, tzinfo=UTC))
    assert main_of([(early_en, 0), (late_ro_hub, 10)], ["en"]) == 2


def test_language_preference_before_date_listed_before_unlisted() -> None:
    early_ar = V(1, "ar", datetime(2019, 3, 5, tzinfo=UTC))
    late_ro = V(2, "ro-RO", datetime(2019, 3, 7, tzinfo=UTC))
    later_en = V(3, "EN", datetime(2019, 3, 8, tzinfo=UTC))
    assert main_of([(early_ar, 0), (late_ro, 0), (later_en, 0)], ["en", "ro"]) == 3
    assert main_of([(early_ar, 0), (late_ro, 0)], ["en", "ro"]) == 2
    assert main_of([(early_ar, 0), (late_ro, 0)], []) == 1


def test_earliest_published_else_first_seen_then_lowest_id() -> None:
    undated_seen_early = V(5, "en", None, first_seen_at=datetime(2019, 3, 4, tzinfo=UTC))
    dated = V(4, "en", datetime(2019, 3, 6, 12, tzinfo=UTC))
    assert main_of([(dated, 0), (undated_seen_early, 0)], []) == 5
    # A naive timestamp (as SQLite may give) compares as UTC.
    twin = V(3, "en", datetime(2019, 3, 6, 12))
    assert main_of([(dated, 0), (twin, 0)], []) == 3


def test_language_rank() -> None:
    assert language_rank("en_GB", ["ro", "en"]) == 1
    assert language_rank(None, ["ro", "en"]) == 2
    assert language_rank("de", []) == 0
