"""The story decision on clear cases: a reprint, a translation, same names another event, a far date."""

from __future__ import annotations

import copy
from datetime import date

import pytest

from tests.stories.pairs import (
    CLUSTER_HACKATHON,
    PARTNERSHIP_AR,
    PARTNERSHIP_EN,
    PARTNERSHIP_RENEWED,
    PARTNERSHIP_REPRINT,
    PARTNERSHIP_RO,
    PRESS_RELEASE,
)
from worker.errors import MatchInputError
from worker.stories.match import MatchConfig, Matcher, decide


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher()


def test_the_model_runs_only_when_it_can_change_the_answer() -> None:
    matcher = Matcher()
    pairs = [
        (PARTNERSHIP_EN, PARTNERSHIP_REPRINT),  # near-verbatim: no model
        (PARTNERSHIP_EN, PARTNERSHIP_RENEWED),  # a year apart: no model
        (PARTNERSHIP_EN, PARTNERSHIP_AR),  # the numbers alone cannot decide: the model
    ]
    decisions = matcher.decide_many(pairs)
    assert [getattr(d, "same", None) for d in decisions] == [True, False, True]
    assert matcher.stats["pairs that needed the model"] == 1
    assert matcher.stats["articles embedded"] == 2


def test_a_reprinted_press_release_is_the_same_story_without_the_model(matcher: Matcher) -> None:
    decision = matcher.decide(PARTNERSHIP_EN, PARTNERSHIP_REPRINT)
    assert decision.same
    assert decision.reason == "near-verbatim copy"
    assert "embedding" not in decision.signals


def test_a_romanian_write_up_joins_the_english_story(matcher: Matcher) -> None:
    decision = matcher.decide(PARTNERSHIP_RO, PARTNERSHIP_EN)
    assert decision.same, decision
    assert decision.signals["verbatim"] < 0.1  # decided on meaning, names and numbers, not copied text


def test_an_arabic_write_up_joins_on_the_embedding(matcher: Matcher) -> None:
    decision = matcher.decide(PARTNERSHIP_EN, PARTNERSHIP_AR)
    assert decision.same, decision
    assert decision.signals["entities"] == 0  # no name in a shared script: the model decided
    assert "embedding" in decision.signals


def test_same_actors_same_week_another_event_is_another_story(matcher: Matcher) -> None:
    for version in (PARTNERSHIP_EN, PARTNERSHIP_RO):
        decision = matcher.decide(version, CLUSTER_HACKATHON)
        assert not decision.same, decision
        assert decision.score < 0.5


def test_the_same_partners_a_year_later_are_another_story(matcher: Matcher) -> None:
    decision = matcher.decide(PARTNERSHIP_EN, PARTNERSHIP_RENEWED)
    assert not decision.same
    assert decision.reason == "published too far apart"
    # the window is configurable: with a wide one the near-copy text decides
    assert Matcher(MatchConfig(window_days=400)).decide(PARTNERSHIP_EN, PARTNERSHIP_RENEWED).same


def test_decide_is_symmetric_and_same_follows_the_score() -> None:
    pairs = [(PARTNERSHIP_EN, PARTNERSHIP_RO), (PARTNERSHIP_RO, CLUSTER_HACKATHON)]
    for a, b in pairs:
        forward, backward = decide(a, b), decide(b, a)
        assert forward == backward
        assert forward[0] == (forward[1] >= 0.5)
        assert 0.0 <= forward[1] <= 1.0


def test_features_are_computed_once_per_distinct_article() -> None:
    matcher = Matcher()
    matcher.decide(PARTNERSHIP_EN, PARTNERSHIP_AR)
    first = matcher.features(PARTNERSHIP_EN)
    assert first.embedding is not None  # embedded for that pair, and kept
    matcher.decide(PARTNERSHIP_RO, PARTNERSHIP_AR)
    matcher.decide(PARTNERSHIP_EN, PARTNERSHIP_RO)
    assert matcher.stats["articles embedded"] <= 3
    assert matcher.features(copy.deepcopy(PARTNERSHIP_EN)) is first
    edited = dict(PARTNERSHIP_EN, title="Cluj IT Cluster and Rawabi Tech Hub sign a partnership")
    assert matcher.features(edited) is not first


@pytest.mark.parametrize(
    ("article", "message"),
    [
        ("just text", "must be a JSON object"),
        ({"url": "https://x.example/"}, "neither title nor content_text"),
        ({"title": "A title", "published": "last Tuesday"}, "not an ISO date"),
        ({"title": ["a", "list"]}, "title must be a string"),
        ({"title": "A title", "published": "0001-01-01T00:00:00+01:00"}, "out of range"),
        ({"title": "A title", "published": "9999-12-31T23:59:59-01:00"}, "out of range"),
    ],
)
def test_a_bad_article_is_a_clear_error(matcher: Matcher, article: object, message: str) -> None:
    with pytest.raises(MatchInputError, match=message):
        matcher.decide(PARTNERSHIP_EN, article)  # type: ignore[arg-type]


def test_a_malformed_link_in_the_text_is_kept_as_written() -> None:
    # urlsplit raises ValueError on an unclosed IPv6 bracket: the article is still matched
    text = PARTNERSHIP_EN["content_text"] + " Details: http://[cluj-rawabi/partnership and https://[::1/x"
    found = Matcher().features(dict(PARTNERSHIP_EN, content_text=text, links=["https://[bad"]))
    assert {"[cluj-rawabi/partnership", "[::1/x", "[bad"} <= found.links


# A write-up of the press release weeks later that states the event's date in its first sentence.
PARTNERSHIP_LATE_WRITE_UP = {
    "url": "https://monthly.example/2019/04/cluj-rawabi",
    "title": "Looking back: Cluj IT Cluster and Rawabi Tech Hub sign partnership",
    "content_text": "On 12 March 2019, " + PRESS_RELEASE[0].lower() + PRESS_RELEASE[1:],
    "published": "2019-04-16T09:00:00+00:00",
    "language": "en",
}


def test_a_late_write_up_stating_the_event_date_is_compared_on_that_date(matcher: Matcher) -> None:
    features = matcher.features(PARTNERSHIP_LATE_WRITE_UP)
    assert (date(2019, 3, 12), date(2019, 3, 12)) in features.days
    assert (date(2019, 4, 16), date(2019, 4, 16)) in features.days  # the publication day stays
    decision = matcher.decide(PARTNERSHIP_EN, PARTNERSHIP_LATE_WRITE_UP)  # published 35 days apart
    assert decision.same, decision
    assert decision.reason == "near-verbatim copy"
    # the same late write-up without the stated date is outside the window again
    undated = dict(PARTNERSHIP_LATE_WRITE_UP, content_text=PRESS_RELEASE)
    assert matcher.features(undated).days == ((date(2019, 4, 16), date(2019, 4, 16)),)
    assert matcher.decide(PARTNERSHIP_EN, undated).reason == "published too far apart"


def test_without_publication_dates_stated_days_alone_or_nothing_decide_the_window() -> None:
    matcher = Matcher()
    undated_en = dict(PARTNERSHIP_EN, published=None)
    assert matcher.features(undated_en).days == ()
    # neither dated nor stating a date: no window, the text decides
    assert matcher.decide(undated_en, dict(PARTNERSHIP_REPRINT, published=None)).same
    # one side states a date a year before the other's publication: outside the window
    stated = dict(PARTNERSHIP_LATE_WRITE_UP, published=None)
    assert matcher.features(stated).days == ((date(2019, 3, 12), date(2019, 3, 12)),)
    assert matcher.decide(stated, PARTNERSHIP_RENEWED).reason == "published too far apart"


# A press release of the day, and a feature five weeks later in its own words that states the event's
# date in its first sentence and quotes the same statement word for word.
PORT_RELEASE = {
    "url": "https://port-authority.example/news/green-berth",
    "title": "Port of Gdynia opens its first shore-power berth for ferries",
    "content_text": (
        "The Port of Gdynia has opened a shore-power berth that lets ferries switch off their engines "
        "while docked, cutting emissions at the Stena terminal. "
        '"Every ferry that plugs in here stops burning diesel in the middle of the city, and that is '
        'the change our neighbours have asked us for since the terminal opened," said Adam Nowak, '
        "the port's director of infrastructure."
    ),
    "published": "2021-02-03T09:00:00+01:00",
    "language": "en",
}
PORT_FEATURE = {
    "url": "https://baltic-shipping.example/2021/03/gdynia-shore-power",
    "title": "How Gdynia plugged its ferries into the grid",
    "content_text": (
        "On 3 February 2021, Gdynia became the first Polish port where a ferry can draw its power from "
        "land. Operators at the Stena terminal had waited years for the connection, which took two "
        "winters to build. Adam Nowak put it plainly at the opening: "
        '"Every ferry that plugs in here stops burning diesel in the middle of the city, and that is '
        'the change our neighbours have asked us for since the terminal opened." Other Baltic ports '
        "are watching how often the ships actually use it."
    ),
    "published": "2021-03-10T07:00:00+01:00",
    "language": "en",
}


def test_a_late_write_up_quoting_the_same_statement_joins_the_story(matcher: Matcher) -> None:
    decision = matcher.decide(PORT_RELEASE, PORT_FEATURE)  # published 35 days apart
    assert decision.same, decision
    assert decision.reason == "the same statement quoted"
    assert decision.signals["verbatim"] < 0.5  # not a copy: the quote decided
    # without the quote, the late write-up is refused whatever its other signals
    unquoted = dict(PORT_FEATURE, content_text=PORT_FEATURE["content_text"].split(" Adam Nowak")[0])
    assert not matcher.decide(PORT_RELEASE, unquoted).same


def test_a_pair_within_the_window_only_through_a_stated_date_needs_a_copy_or_a_quote() -> None:
    # A write-up in other words (no shared quote) that the combined signals accept within the window
    reworded = dict(PARTNERSHIP_RO, content_text="Pe 12 martie 2019, " + PARTNERSHIP_RO["content_text"])
    assert Matcher().decide(PARTNERSHIP_EN, reworded).same
    # ... published five weeks later: within the window only through the date it states, refused
    late = dict(reworded, published="2019-04-16T09:00:00+00:00")
    decision = Matcher().decide(PARTNERSHIP_EN, late)
    assert not decision.same
    assert decision.reason == "published too far apart; a stated date needs a copy or a quote"
