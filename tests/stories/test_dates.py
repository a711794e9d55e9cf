"""worker/stories/dates.py: the days an article is about (publication day + event dates its lead states)."""

# Leads in eleven languages: their letters are meant, not look-alikes of Latin ones.
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from worker.normalize import normalize
from worker.stories.dates import days_apart, event_days, lead_text
from worker.stories.features import parse_published

DEMO = Path(__file__).resolve().parents[2] / "worker" / "demo"
PUBLISHED = datetime(2019, 3, 6, 9, 0, tzinfo=UTC)
TODAY = (date(2019, 3, 6), date(2019, 3, 6))
END_OF_JANUARY = (date(2019, 1, 21), date(2019, 1, 31))
JAN_28 = (date(2019, 1, 28), date(2019, 1, 28))


def stated(lead: str, published: datetime | None = PUBLISHED, title: str = "") -> list[tuple[date, date]]:
    """The event days other than the publication day."""
    found = event_days(title, lead, published)
    if published is not None:
        assert (published.date(), published.date()) in found  # always there
        found = [r for r in found if r != (published.date(), published.date())]
    return found


@pytest.mark.parametrize(
    ("language", "lead", "expected"),
    [
        ("en", "In the end of January, the two clusters established a connection.", [END_OF_JANUARY]),
        ("en", "The memorandum was signed on January 28, 2019 in Rawabi.", [JAN_28]),
        ("en", "The memorandum was signed on 28th January 2019 in Rawabi.", [JAN_28]),
        ("ro", "La sfârșitul lunii ianuarie, clusterele au semnat un acord.", [END_OF_JANUARY]),
        ("ro", "Acordul a fost semnat pe 28 ianuarie 2019 la Rawabi.", [JAN_28]),
        ("de", "Ende Januar haben die beiden Cluster eine Partnerschaft geschlossen.", [END_OF_JANUARY]),
        ("de", "Am 28. Januar 2019 unterzeichneten die Cluster ein Memorandum.", [JAN_28]),
        ("fr", "Fin janvier, les deux clusters ont noué un partenariat.", [END_OF_JANUARY]),
        ("fr", "Le protocole a été signé le 28 janvier 2019 à Rawabi.", [JAN_28]),
        ("es", "A finales de enero, los dos clústeres firmaron una alianza.", [END_OF_JANUARY]),
        ("es", "El memorando se firmó el 28 de enero de 2019 en Rawabi.", [JAN_28]),
        ("pl", "Pod koniec stycznia oba klastry podpisały porozumienie.", [END_OF_JANUARY]),
        ("pl", "Memorandum podpisano 28 stycznia 2019 r. w Rawabi.", [JAN_28]),
        ("tr", "Ocak sonunda iki küme bir ortaklık kurdu.", [END_OF_JANUARY]),
        ("tr", "Mutabakat 28 Ocak 2019'da Rawabi'de imzalandı.", [JAN_28]),
        ("ar", "في أواخر كانون الثاني، أقام التجمعان شراكة في قطاع التكنولوجيا.", [END_OF_JANUARY]),
        ("ar", "في نهاية يناير أقام التجمعان شراكة.", [END_OF_JANUARY]),
        ("ar", "وُقّعت المذكرة في ٢٨ كانون الثاني/يناير ٢٠١٩ في روابي.", [JAN_28]),
        ("ar", "وقعت المذكرة يوم 28 يناير 2019 في روابي.", [JAN_28]),
        ("it", "Alla fine di gennaio i due cluster hanno firmato un accordo.", [END_OF_JANUARY]),
        ("it", "Il memorandum è stato firmato il 28 gennaio 2019 a Rawabi.", [JAN_28]),
        ("pt", "No final de janeiro, os dois clusters assinaram uma parceria.", [END_OF_JANUARY]),
        ("pt", "O memorando foi assinado em 28 de janeiro de 2019 em Rawabi.", [JAN_28]),
        ("nl", "Eind januari sloten de twee clusters een partnerschap.", [END_OF_JANUARY]),
        ("nl", "Het memorandum werd op 28 januari 2019 in Rawabi getekend.", [JAN_28]),
    ],
)
def test_languages(language: str, lead: str, expected: list[tuple[date, date]]) -> None:
    assert stated(lead) == expected, language


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        ("Signed on 2019-01-28.", [JAN_28]),
        ("Signed on 28.01.2019.", [JAN_28]),
        ("Signed on 28/01/2019.", [JAN_28]),
        # day-first wherever a day-first reading exists; month-first only when it is the only reading
        ("Signed on 01/28/2019.", [JAN_28]),
        ("Signed on 02/03/2019.", [(date(2019, 3, 2), date(2019, 3, 2))]),
        ("Signed on 02.03.2019.", [(date(2019, 3, 2), date(2019, 3, 2))]),
        ("Signed on 31/31/2019.", []),
        ("The fair runs on 6-7 April.", [(date(2019, 4, 6), date(2019, 4, 7))]),
        ("The fair runs on 6 and 7 April.", [(date(2019, 4, 6), date(2019, 4, 7))]),
        ("The fair ran in January.", [(date(2019, 1, 1), date(2019, 1, 31))]),
        ("It opened in mid-February.", [(date(2019, 2, 11), date(2019, 2, 20))]),
        ("It opened in early February.", [(date(2019, 2, 1), date(2019, 2, 10))]),
        ("The count closed in February 2019.", [(date(2019, 2, 1), date(2019, 2, 28))]),
    ],
)
def test_forms(lead: str, expected: list[tuple[date, date]]) -> None:
    assert stated(lead) == expected


def test_bare_month_names_and_words_that_look_like_them_are_not_dates() -> None:
    # "May" without a qualifier, the modal "may", Romanian "mai" (more), "2 out of 3", a weekday
    lead = (
        "Cluj members may 10 times a year meet in Rawabi; May brings more. În mai multe orașe, 2 out "
        "of 3 members met on Tuesday. March on!"
    )
    assert stated(lead) == []


def test_whole_months_can_be_left_out() -> None:
    lead = "Rivas avenged his defeat in May and his loss of 2 June; he had lost at the end of April."
    assert stated(lead) == [
        (date(2019, 4, 21), date(2019, 4, 30)),
        (date(2019, 5, 1), date(2019, 5, 31)),
        (date(2019, 6, 2), date(2019, 6, 2)),
    ]
    kept = event_days("", lead, PUBLISHED, whole_months=False)
    assert kept == [TODAY, (date(2019, 4, 21), date(2019, 4, 30)), (date(2019, 6, 2), date(2019, 6, 2))]


def test_background_years_are_not_event_dates() -> None:
    lead = (
        "The cluster, founded in 2015 and a member since March 2016, signed on 28 January 2019. "
        "In 2017 it had 40 members."
    )
    assert stated(lead) == [JAN_28]


def test_a_date_more_than_a_year_after_is_left_out() -> None:
    assert stated("The programme runs until 1 June 2021. It starts now.") == []
    assert stated("The programme runs until 1 June 2019. It starts now.") == [
        (date(2019, 6, 1), date(2019, 6, 1))
    ]


def test_day_and_month_without_a_year_across_new_year() -> None:
    january_3 = datetime(2020, 1, 3, 8, tzinfo=UTC)
    assert stated("The fair that closed on 28 December drew 4,000 visitors.", january_3) == [
        (date(2019, 12, 28), date(2019, 12, 28))
    ]
    assert stated("At the end of December the fair drew crowds.", january_3) == [
        (date(2019, 12, 21), date(2019, 12, 31))
    ]
    # and the other way: an article of 28 December announcing 3 January
    december_28 = datetime(2019, 12, 28, 8, tzinfo=UTC)
    assert stated("The fair opens on 3 January.", december_28) == [(date(2020, 1, 3), date(2020, 1, 3))]


def test_end_of_february_follows_leap_years() -> None:
    assert stated("At the end of February the fair drew crowds.", datetime(2020, 3, 2, tzinfo=UTC)) == [
        (date(2020, 2, 21), date(2020, 2, 29))
    ]
    assert stated("At the end of February the fair drew crowds.", datetime(2019, 3, 2, tzinfo=UTC)) == [
        (date(2019, 2, 21), date(2019, 2, 28))
    ]


def test_only_the_title_and_the_lead_are_read() -> None:
    third_sentence = "The cluster met. It grew. It signed on 28 January 2019."
    assert stated(third_sentence) == []
    assert stated(third_sentence.replace(" It grew.", "")) == [JAN_28]
    assert stated("Nothing new here.", title="Signed on 28 January") == [JAN_28]
    # a sentence end is not the dot of an ordinal or an abbreviation
    assert "28. Januar" in lead_text("", "Am 28. Januar 2019 unterzeichnet. Dann mehr. Noch mehr.")
    long = "word " * 200 + "28 January 2019"
    assert stated(long) == []


def test_without_a_publication_day_only_dated_statements_count() -> None:
    assert event_days("", "Signed on 28 January 2019 and on 3 March.", None) == [JAN_28]
    assert event_days("", "Nothing dated.", None) == []


def test_days_apart() -> None:
    a = [(date(2019, 1, 21), date(2019, 1, 31)), (date(2019, 3, 6), date(2019, 3, 6))]
    assert days_apart(a, [JAN_28]) == 0.0
    assert days_apart(a, [(date(2019, 3, 4), date(2019, 3, 4))]) == 2.0
    assert days_apart([JAN_28], [(date(2019, 3, 4), date(2019, 3, 4))]) == 35.0
    assert days_apart([(date(2019, 2, 3), date(2019, 2, 3))], a) == 3.0
    assert days_apart([], a) is None
    assert days_apart(a, []) is None


def demo(name: str) -> list[tuple[date, date]]:
    """A demo page read the way `syndicate scrape --saved FILE URL` reads it."""
    path = DEMO / f"{name}.html"
    article = normalize(path.read_bytes(), f"http://127.0.0.1:8000/demo/{name}.html").to_dict()
    return event_days(article["title"], article["content_text"], parse_published(article["published"]))


def test_the_seed_story_from_three_partners() -> None:
    """The seed's one story: the 28 January press release, the 4 March and the 6 March write-ups."""
    march_6 = demo("cluj-it-cluster-rawabi-tech-hub-partnership")
    march_4 = demo("romanian-palestinian-tech-bridge")
    january_28 = demo("rawabi-foundation-signs-cluj-memorandum")
    assert march_6 == [END_OF_JANUARY, TODAY]  # "In the end of January, ... established a connection"
    assert days_apart(march_6, january_28) == 0.0
    assert days_apart(march_6, march_4) == 2.0
    # The 4 March write-up states no date: it meets the press release only through the 6 March one
    # (the story's other member), not pairwise.
    assert days_apart(march_4, january_28) == 35.0
