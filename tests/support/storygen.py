"""Generated news events, each written up by one to three partner outlets, deterministic from a seed.

The fault suite, the scale-out rig and the crawl tests publish generated articles. With stories on,
near-identical articles (one shared body, titles differing by a number) are rightly one story, so
every generated event here has its own organisations, people, place, numbers, date and quote, drawn
without reuse from pools of invented names (invented so that no two events share a proper name by
chance). An event can be written up several times, as partners do:

* variant 0: the English write-up (what a single-version story publishes);
* variant 1: another outlet's English rewording: another title, the sentences reworded and in
  another order, the same quote, names, numbers and date;
* variant 2: a German write-up by template, with the same names, numbers, date and the quote
  translated.

:func:`events` gives the events, :meth:`Event.write_up` a variant as title, paragraphs, language and
publication time, :meth:`Event.article` the same as the article dict ``syndicate story match``
reads. Nothing here knows about the matcher: ``tests/pipeline/test_storygen.py`` runs the real one
over the generated pages (distinct events apart, versions of one event together).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

VARIANTS = 3  # English, English reworded, German

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kl", "l", "m", "n", "p", "pr", "r", "s", "st",
           "t", "tr", "v", "z"]  # fmt: skip
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
_CODAS = ["", "n", "r", "l", "s", "m", "nd", "rk", "st", "x"]
_FIRST = ["Ana", "Bogdan", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ioana", "Jonas",
          "Karim", "Lena", "Mihai", "Nadia", "Oskar", "Paula", "Radu", "Sara", "Tomas", "Ursula",
          "Victor", "Wanda", "Yusuf", "Zofia"]  # fmt: skip
_ORG_KINDS = [("Labs", "Labs"), ("Cluster", "Cluster"), ("Foundation", "Stiftung"),
              ("Institute", "Institut"), ("Network", "Netzwerk"), ("Works", "Werke"),
              ("Hub", "Hub"), ("Collective", "Kollektiv")]  # fmt: skip
_ROLES = [("director", "Direktorin"), ("chair", "Vorsitzende"), ("founder", "Gründerin"),
          ("head of research", "Forschungsleiterin"), ("spokesperson", "Sprecherin")]  # fmt: skip
_TOPICS = [
    ("battery recycling", "Batterierecycling"),
    ("rural telemedicine", "ländliche Telemedizin"),
    ("open bus timetables", "offene Busfahrpläne"),
    ("flood sensors", "Hochwassersensoren"),
    ("school robotics", "Schulrobotik"),
    ("solar microgrids", "Solar-Kleinnetze"),
    ("vineyard drones", "Weinbergdrohnen"),
    ("hospital scheduling software", "Klinikplanungssoftware"),
    ("cybersecurity audits for town halls", "Sicherheitsprüfungen für Rathäuser"),
    ("accessible tram stops", "barrierefreie Straßenbahnhaltestellen"),
    ("beekeeping data", "Imkereidaten"),
    ("textile reuse", "Textilwiederverwendung"),
    ("cold storage for farmers", "Kühllager für Landwirte"),
    ("quantum chemistry courses", "Kurse in Quantenchemie"),
    ("river cleanup boats", "Boote zur Flussreinigung"),
    ("bicycle logistics", "Fahrradlogistik"),
    ("translation tools for clinics", "Übersetzungswerkzeuge für Kliniken"),
    ("earthquake early warning", "Erdbebenfrühwarnung"),
    ("library digitisation", "Digitalisierung von Bibliotheken"),
    ("heat pumps for schools", "Wärmepumpen für Schulen"),
]
_MONTHS_DE = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
              "Oktober", "November", "Dezember"]  # fmt: skip
# What the organisation's speaker says (English, German): each event picks one. A name or figure of
# the event's own at least every four words, so that two events' quotes share no run of four words
# (the matcher takes a dozen words quoted alike as the same statement).
_QUOTES = [
    ("{o} and {p} put {a} thousand euros into {t}, where {n} people and {m} partners wait",
     "{o} und {p} stecken {a} Tausend Euro nach {t}, wo {n} Menschen und {m} Partner warten"),
    ("In {t} we counted {n} people, {m} partners and {a} thousand euros; {p} trusted {o}",
     "In {t} zählten wir {n} Menschen, {m} Partner und {a} Tausend Euro; {p} vertraute {o}"),
    ("{n} colleagues of {o} in {t} waited for {p}, {m} partners and {a} thousand euros",
     "{n} Kolleginnen von {o} in {t} warteten auf {p}, {m} Partner und {a} Tausend Euro"),
    ("Without {p}, {t} would have no {a} thousand euros, no {n} people, no {m} partners for {o}",
     "Ohne {p} hätte {t} keine {a} Tausend Euro, keine {n} Menschen, keine {m} Partner für {o}"),
    ("{a} thousand euros from {p} mean {n} jobs in {t} and {m} partners around {o}",
     "{a} Tausend Euro von {p} bedeuten {n} Stellen in {t} und {m} Partner rund um {o}"),
]  # fmt: skip
_KINDS = ("partnership", "funding", "opening", "hackathon", "training", "report", "award", "conference")


def _invented(rng: random.Random, used: set[str], syllables: int) -> str:
    """A capitalised invented word not handed out before (so no two events share it)."""
    while True:
        word = "".join(
            rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
        )
        word = word.capitalize()
        if len(word) >= 5 and word not in used:
            used.add(word)
            return word


@dataclass(frozen=True)
class Event:
    """One thing that happened: who, where, when, how much, and what was said."""

    key: str
    kind: str
    org: str  # e.g. "Valtoria Labs"
    org_de: str
    partner: str  # a second organisation
    partner_de: str
    town: str
    person: str
    role: tuple[str, str]
    topic: tuple[str, str]
    amount: int  # thousand euros
    count: int  # people, teams, members...
    members: int  # the organisation's partners (a third figure every write-up states)
    voice: int  # which of the quotes the speaker says
    day: datetime  # the event's day (UTC midnight)

    # -- what each write-up says

    def _date_en(self) -> str:
        return f"{self.day:%B} {self.day.day}, {self.day.year}"

    def _date_de(self) -> str:
        return f"{self.day.day}. {_MONTHS_DE[self.day.month - 1]} {self.day.year}"

    def _quote_en(self) -> str:
        return _QUOTES[self.voice][0].format(
            n=self.count, t=self.town, a=self.amount, o=self.org, p=self.partner, m=self.members
        )

    def _quote_de(self) -> str:
        return _QUOTES[self.voice][1].format(
            n=self.count, t=self.town, a=self.amount, o=self.org_de, p=self.partner_de, m=self.members
        )

    def _what_en(self) -> tuple[str, str, str]:
        """(title, first sentence, second sentence) of the plain write-up."""
        o, p, t, n, a, d = self.org, self.partner, self.town, self.count, self.amount, self._date_en()
        topic = self.topic[0]
        return {
            "partnership": (
                f"{o} and {p} sign a partnership on {topic}",
                f"On {d}, {o} and {p} signed a partnership in {t} to work together on {topic}.",
                f"The agreement brings {n} engineers of both together and is worth {a} thousand euros.",
            ),
            "funding": (
                f"{o} raises {a} thousand euros for {topic}",
                f"{o} of {t} announced on {d} that it raised {a} thousand euros for its work on {topic}.",
                f"The round was led by {p} and will pay for {n} new posts.",
            ),
            "opening": (
                f"{o} opens an office in {t} for {topic}",
                f"{o} opened an office in {t} on {d}, its first outside its home region, to work on {topic}.",
                f"It will employ {n} people within two years, with {a} thousand euros from {p}.",
            ),
            "hackathon": (
                f"{n} teams gather in {t} for a hackathon on {topic}",
                f"{o} hosted {n} teams in {t} on {d} for a weekend hackathon on {topic}.",
                f"The winners share {a} thousand euros of prizes offered by {p}.",
            ),
            "training": (
                f"{o} and {p} launch training on {topic} for {n} developers",
                f"{o} and {p} launched a training programme on {topic} in {t} on {d}.",
                f"It takes {n} developers a year and costs {a} thousand euros.",
            ),
            "report": (
                f"{o} report counts {n} projects on {topic} in {t}",
                f"A report {o} published on {d} counts {n} projects on {topic} in {t}.",
                f"Together they received {a} thousand euros last year, most of it from {p}.",
            ),
            "award": (
                f"{o} wins the {p} prize for {topic}",
                f"{o} of {t} received the {p} prize for its work on {topic} on {d}.",
                f"The prize carries {a} thousand euros; {n} entries competed.",
            ),
            "conference": (
                f"{n} delegates meet in {t} to discuss {topic}",
                f"{o} gathered {n} delegates in {t} on {d} for a conference on {topic}.",
                f"The two days were co-organised by {p} on a budget of {a} thousand euros.",
            ),
        }[self.kind]

    def _reworded_en(self) -> tuple[str, str, str]:
        """Another outlet's wording of the same facts."""
        o, p, t, n, a, d = self.org, self.partner, self.town, self.count, self.amount, self._date_en()
        topic = self.topic[0]
        return {
            "partnership": (
                f"{topic.capitalize()}: {p} teams up with {o}",
                f"{p} and {o} are joining forces on {topic}, after a signing ceremony in {t} on {d}.",
                f"Worth {a} thousand euros, the deal puts {n} of their engineers on shared projects.",
            ),
            "funding": (
                f"{p} backs {o} with {a} thousand euros",
                f"Investors led by {p} have put {a} thousand euros into {o}, the {t} group said on {d}.",
                f"The money is meant for {topic} and for hiring {n} staff.",
            ),
            "opening": (
                f"{t} gets {n} jobs as {o} moves in",
                f"{t} welcomed {o} on {d}: the group now has an office there dedicated to {topic}.",
                f"Backed by {a} thousand euros from {p}, it plans {n} hires over two years.",
            ),
            "hackathon": (
                f"Hackathon in {t}: {topic} draws {n} teams to {o}",
                f"A weekend of coding on {topic} brought {n} teams to {o} in {t} on {d}.",
                f"{p} put up {a} thousand euros in prize money.",
            ),
            "training": (
                f"{n} developers to learn {topic} with {p} and {o}",
                f"A year-long course on {topic} for {n} developers began in {t} on {d}, run by {p} and {o}.",
                f"Its budget is {a} thousand euros.",
            ),
            "report": (
                f"{t} has {n} projects on {topic}, says {o}",
                f"There are {n} projects on {topic} in {t}, according to figures {o} released on {d}.",
                f"They drew {a} thousand euros in the past year, mainly from {p}.",
            ),
            "award": (
                f"{p} prize goes to {o} of {t}",
                f"The {p} prize for {topic} went to {o} on {d}, ahead of {n} other entries.",
                f"The winners of {t} take home {a} thousand euros.",
            ),
            "conference": (
                f"{topic.capitalize()} conference: {o} hosts {n} in {t}",
                f"{n} delegates came to {t} on {d} for the conference {o} held on {topic}.",
                f"{p} co-organised it, with {a} thousand euros.",
            ),
        }[self.kind]

    def _german(self) -> tuple[str, str, str]:
        o, p, t, n, a, d = self.org_de, self.partner_de, self.town, self.count, self.amount, self._date_de()
        topic = self.topic[1]
        return {
            "partnership": (
                f"{o} und {p} unterzeichnen Partnerschaft für {topic}",
                f"Am {d} unterzeichneten {o} und {p} in {t} eine Partnerschaft für {topic}.",
                f"Die Vereinbarung bringt {n} Ingenieure zusammen und hat einen Wert von {a} Tausend Euro.",
            ),
            "funding": (
                f"{o} sammelt {a} Tausend Euro für {topic}",
                f"{o} aus {t} gab am {d} bekannt, dass es {a} Tausend Euro für {topic} gesammelt hat.",
                f"Die Runde führte {p} an; das Geld finanziert {n} neue Stellen.",
            ),
            "opening": (
                f"{o} eröffnet Büro in {t} für {topic}",
                f"{o} eröffnete am {d} ein Büro in {t}, um an {topic} zu arbeiten.",
                f"In zwei Jahren sollen dort {n} Menschen arbeiten, mit {a} Tausend Euro von {p}.",
            ),
            "hackathon": (
                f"{n} Teams beim Hackathon zu {topic} in {t}",
                f"{o} empfing am {d} in {t} {n} Teams zu einem Hackathon über {topic}.",
                f"Die Sieger teilen sich {a} Tausend Euro Preisgeld von {p}.",
            ),
            "training": (
                f"{o} und {p} starten Schulung zu {topic} für {n} Entwickler",
                f"{o} und {p} starteten am {d} in {t} ein Schulungsprogramm zu {topic}.",
                f"Es nimmt {n} Entwickler für ein Jahr auf und kostet {a} Tausend Euro.",
            ),
            "report": (
                f"Bericht von {o}: {n} Projekte zu {topic} in {t}",
                f"Ein am {d} veröffentlichter Bericht von {o} zählt {n} Projekte zu {topic} in {t}.",
                f"Sie erhielten im Vorjahr {a} Tausend Euro, meist von {p}.",
            ),
            "award": (
                f"{o} gewinnt den Preis von {p} für {topic}",
                f"{o} aus {t} erhielt am {d} den Preis von {p} für seine Arbeit zu {topic}.",
                f"Der Preis ist mit {a} Tausend Euro dotiert; {n} Bewerbungen gingen ein.",
            ),
            "conference": (
                f"{n} Delegierte beraten in {t} über {topic}",
                f"{o} versammelte am {d} {n} Delegierte in {t} zu einer Konferenz über {topic}.",
                f"Mitveranstalter war {p}, mit einem Budget von {a} Tausend Euro.",
            ),
        }[self.kind]

    def write_up(self, variant: int = 0) -> tuple[str, list[str], str, datetime]:
        """``(title, paragraphs, language, published)`` of write-up ``variant`` (0..2)."""
        role_en, role_de = self.role
        if variant == 0:
            title, first, second = self._what_en()
            said = f"“{self._quote_en()},” said {self.person}, {role_en} of {self.org}."
            background = f"{self.org} has {self.members} partners across the region around {self.town}."
            return title, [f"{first} {second}", said, background], "en", self.day + timedelta(hours=9)
        if variant == 1:
            title, first, second = self._reworded_en()
            said = f"{self.person}, the {role_en} of {self.org}, said: “{self._quote_en()}.”"
            background = f"{self.org} counts {self.members} partners, {self.partner} among them."
            return title, [first, said, f"{second} {background}"], "en", self.day + timedelta(hours=14)
        if variant == 2:
            title, first, second = self._german()
            said = f"„{self._quote_de()}“, sagte {self.person}, {role_de} von {self.org_de}."
            background = f"{self.org_de} hat {self.members} Partner in der Region."
            return title, [f"{first} {second}", said, background], "de", self.day + timedelta(hours=17)
        raise ValueError(f"variant {variant} is not one of 0..{VARIANTS - 1}")

    def article(self, variant: int = 0, url: str | None = None) -> dict[str, Any]:
        """Write-up ``variant`` as the article dict ``syndicate story match`` reads."""
        title, paragraphs, language, published = self.write_up(variant)
        return {
            "url": url or f"https://outlet-{variant}.example/{self.key}",
            "title": title,
            "content_text": "\n\n".join(paragraphs),
            "published": published.isoformat().replace("+00:00", "Z"),
            "language": language,
        }


def _figures(rng: random.Random, count: int, low: int, span: int) -> list[int]:
    """``count`` distinct figures from ``low`` on (the range widened for many events), none of which
    reads as a year (19xx, 20xx): the matcher rightly ignores years."""
    pool = [x for x in range(low, low + max(span, 3 * count)) if not 1900 <= x < 2100]
    return rng.sample(pool, count)


def events(
    count: int, seed: int = 0, start: datetime = datetime(2024, 3, 1, tzinfo=UTC), per_day: float = 5.0
) -> list[Event]:
    """``count`` distinct events from ``seed``, about ``per_day`` a day from ``start`` (so that many
    fall in one matching window), every name, number and quote their own."""
    rng = random.Random(seed)
    used: set[str] = set()
    amounts = _figures(rng, count, 110, 9_880)
    counts = _figures(rng, count, 12, 1_888)
    members = _figures(rng, count, 2_100, 2_899)
    out = []
    for i in range(count):
        kind = _KINDS[i % len(_KINDS)]
        org_name, partner_name = _invented(rng, used, 2), _invented(rng, used, 2)
        org_kind, partner_kind = rng.sample(_ORG_KINDS, 2)
        out.append(
            Event(
                key=f"event-{seed}-{i}",
                kind=kind,
                org=f"{org_name} {org_kind[0]}",
                org_de=f"{org_name} {org_kind[1]}",
                partner=f"{partner_name} {partner_kind[0]}",
                partner_de=f"{partner_name} {partner_kind[1]}",
                town=_invented(rng, used, 3),
                person=f"{rng.choice(_FIRST)} {_invented(rng, used, 2)}",
                role=rng.choice(_ROLES),
                topic=rng.choice(_TOPICS),
                amount=amounts[i],
                count=counts[i],
                members=members[i],
                voice=rng.randrange(len(_QUOTES)),
                day=start + timedelta(days=int(i / per_day)),
            )
        )
    return out
