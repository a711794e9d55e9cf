"""The share outbox (worker/outbox/) on SQLite and PostgreSQL, with a real Redis for pacing and
real HTTP receivers on 127.0.0.1.

Covered: the back catalogue (a source's first crawl, an endpoint added later, ``max_age``,
``back_catalogue``, ``force``), routing, ``delay``, quiet hours, pacing shared by two Runtime
objects through one Redis, a 429 that blocks only its endpoint, endpoints disabled by their errors
and re-enabled, exactly-once delivery after a crash (idempotent resend with the same webhook-id,
``uncertain`` where the network cannot tell), the retry schedule, the operator's retry and
mark-sent, previews that send nothing, and credentials kept out of every error and status.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
import standardwebhooks
from sqlalchemy import select, update

import worker.share as share_pkg
from config.model import parse_config
from config.settings import Settings
from tests.pipeline.receivers import Answer, Receiver
from tests.support.httpserver import HTTPTestServer
from tests.support.services import RedisServer
from worker.actions import retry_share
from worker.crawl import crawl_source, sync_sources
from worker.errors import Deferred, TransientShareError
from worker.http import HttpClient
from worker.ops.status import snapshot
from worker.outbox.delivery import deliver_share
from worker.outbox.endpoints import set_endpoint_enabled
from worker.outbox.leases import stale_shares
from worker.outbox.operator import mark_sent, preview_article
from worker.outbox.pacing import quiet_wait
from worker.outbox.planning import plan_shares
from worker.outbox.retry import RETRY_SCHEDULE
from worker.outbox.view import share_article_view
from worker.process import process_article
from worker.runtime import Runtime
from worker.share import Preview, ShareResult, idempotency_key
from worker.share.webhook import WebhookEndpoint
from worker.store.db import get_engine, upgrade
from worker.store.models import Article, Share, utcnow
from worker.store.models import Endpoint as EndpointRow

REDIS_DB = 10  # web tests use 9, end-to-end 1-3
SECRET = "whsec_" + base64.b64encode(b"outbox-test-secret-of-32-bytes!!").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"the-other-endpoints-secret-32b!!").decode()
ENV = {"HOOK_SECRET": SECRET, "OTHER_SECRET": OTHER_SECRET}


@pytest.fixture
def make_receiver() -> Iterator[Callable[[], Receiver]]:
    """Start receivers on demand; all are shut down after the test."""
    started: list[Receiver] = []

    def make() -> Receiver:
        receiver = Receiver()
        receiver.thread.start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def receiver(make_receiver: Callable[[], Receiver]) -> Receiver:
    """One running receiver."""
    return make_receiver()


# ---------------------------------------------------------------- the outbox under test


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A Redis database of the session's real server, emptied for this test."""
    url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


class Outbox:
    """A Runtime (with real Redis) on a migrated database, plus helpers to make and read rows."""

    def __init__(self, rt: Runtime, build: Callable[..., Runtime]) -> None:
        self.rt = rt
        self.build = build

    def runtime(self, endpoints: list[dict[str, Any]] | None = None) -> Runtime:
        """Another Runtime (another worker process) on the same database and Redis."""
        return self.build(endpoints)

    def article(
        self,
        title: str = "Solar cluster opens a shared test lab",
        *,
        source: str = "valley",
        published: datetime | None = None,
        first_seen: datetime | None = None,
        backfill: bool = False,
        **fields: Any,
    ) -> int:
        """A ready article (as the process stage leaves it); published now unless told otherwise."""
        with self.rt.session() as session:
            ids = sync_sources(session, self.rt.config)
            slug = "-".join(title.lower().split())[:60]
            now = utcnow()
            row = Article(
                source_id=ids[source],
                url=f"https://valley.example/news/{slug}-{time.monotonic_ns()}",
                status="ready",
                title=title,
                summary=f"About: {title}.",
                published=published or now,
                backfill=backfill,
                first_seen_at=first_seen or now,
                **fields,
            )
            row.canonical_url = row.url
            session.add(row)
            session.flush()
            return row.id

    def share(self, share_id: int) -> Share:
        """The share row ``share_id``."""
        with self.rt.session() as session:
            row = session.get(Share, share_id)
            assert row is not None
            return row

    def routed(self, share_id: int) -> tuple[str, str | None]:
        """``(endpoint, article title)`` of a share."""
        with self.rt.session() as session:
            row = session.get(Share, share_id)
            assert row is not None
            return row.endpoint, row.article.title

    def shares(self, endpoint: str | None = None) -> list[Share]:
        """Every share (of ``endpoint``), in id order."""
        with self.rt.session() as session:
            query = select(Share).order_by(Share.id)
            if endpoint is not None:
                query = query.where(Share.endpoint == endpoint)
            return list(session.scalars(query))

    def endpoint_row(self, name: str) -> EndpointRow:
        """The database row of endpoint ``name``."""
        with self.rt.session() as session:
            row = session.scalar(select(EndpointRow).where(EndpointRow.name == name))
            assert row is not None
            return row

    def plan_one(self, article_id: int, endpoint: str, **kwargs: Any) -> int:
        """Plan ``article_id`` and return the id of its share to ``endpoint``."""
        plan_shares(self.rt, article_id, **kwargs)
        [row] = [s for s in self.shares(endpoint) if s.article_id == article_id]
        return row.id

    def set(self, share_id: int, **values: Any) -> None:
        """Change a share row directly (time passing, a worker that died mid-send)."""
        with self.rt.session() as session:
            session.execute(update(Share).where(Share.id == share_id).values(**values))

    def due(self, share_id: int) -> None:
        """Its ``not_before`` has come."""
        self.set(share_id, not_before=utcnow() - timedelta(seconds=1))

    def status(self) -> dict[str, Any]:
        """The status snapshot the web page and ``syndicate status`` show."""
        with self.rt.session() as session:
            return snapshot(session, self.rt.config, "http://feeds.example.test")


@pytest.fixture
def make_outbox(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Outbox]]:
    """``make_outbox(endpoints, sources=None, feeds=None)``: an :class:`Outbox` on a fresh database."""
    upgrade(database_url)
    clients: list[redis.Redis] = []

    def make(
        endpoints: list[dict[str, Any]],
        *,
        sources: list[dict[str, Any]] | None = None,
        feeds: list[dict[str, Any]] | None = None,
        fetch: dict[str, Any] | None = None,
    ) -> Outbox:
        def build(new_endpoints: list[dict[str, Any]] | None = None) -> Runtime:
            config = {
                "fetch": fetch or {"allow_hosts": ["127.0.0.1"], "timeout": "5s"},
                "sources": sources
                or [
                    {"name": "valley", "kind": "listing", "url": "http://127.0.0.1:9/news/"},
                    {"name": "harbour", "kind": "page", "url": "http://127.0.0.1:9/harbour.html"},
                ],
                "feeds": feeds
                or [
                    {"name": "all", "title": "All"},
                    {"name": "it", "title": "IT", "categories": ["IT Systems"]},
                ],
                "endpoints": new_endpoints if new_endpoints is not None else endpoints,
            }
            settings = Settings(
                database_url=database_url,
                redis_url=redis_url,
                var_dir=tmp_path / "var",
                public_url="http://feeds.example.test",
            )
            client = redis.Redis.from_url(redis_url)
            clients.append(client)
            return Runtime(
                settings=settings,
                config=parse_config(config, lookup=ENV.get),
                base_dir=tmp_path,
                redis_client=client,
            )

        outbox = Outbox(build(), build)
        with outbox.rt.session() as session:  # endpoints are "added" now, before any article
            sync_sources(session, outbox.rt.config)
        return outbox

    yield make
    for client in clients:
        client.close()
    get_engine(database_url).dispose()


def hook(url: str, name: str = "hook", **extra: Any) -> dict[str, Any]:
    """A webhook endpoint mapping whose secret is ``${HOOK_SECRET}``."""
    return {
        "name": name,
        "kind": "webhook",
        "url": url,
        "secret": "${HOOK_SECRET}",
        "story_window": 0,
        **extra,
    }


def file_endpoint(name: str = "archive", **extra: Any) -> dict[str, Any]:
    """A file endpoint mapping writing ``<name>.jsonl`` under the runtime's base dir."""
    return {"name": name, "kind": "file", "path": f"{name}.jsonl", "story_window": 0, **extra}


# ---------------------------------------------------------------- back catalogue (real crawls)


NEW_STORY = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harbour opens a second quay</title>
<meta property="article:published_time" content="%s">
<meta property="article:section" content="IT Systems">
</head><body><article><h1>Harbour opens a second quay</h1>
<p>The harbour authority opened a second quay for container ships this morning, doubling the number of
berths available to the cluster's logistics members and cutting waiting times at the entrance.</p>
<p>The quay was built in fourteen months and cost less than planned, the authority said.</p>
</article></body></html>"""

LISTING = """<!doctype html><html><body><ul>
<li><a class="post-link" href="/news/solar-cluster.html">Solar</a></li>
<li><a class="post-link" href="/news/farm-cooperative.html">Farm</a></li>
<li><a class="post-link" href="/news/robotics-camp.html">Robotics</a></li>
%s
</ul></body></html>"""


@pytest.fixture
def crawl_site(site: HTTPTestServer) -> HTTPTestServer:
    """The pipeline fixture site with its listing served from a route that a test can extend."""
    site.content("/news/", (LISTING % "").encode())
    return site


def crawl_outbox(
    make_outbox: Callable[..., Outbox], site: HTTPTestServer, endpoints: list[dict[str, Any]]
) -> Outbox:
    """An outbox whose ``valley`` source is the fixture site's listing."""
    return make_outbox(
        endpoints,
        sources=[
            {
                "name": "valley",
                "kind": "listing",
                "url": site.url("/news/"),
                "options": {"link_selector": "a.post-link"},
            }
        ],
        fetch={"allow_hosts": [site.host_port], "timeout": "5s"},
    )


def crawl_and_plan(outbox: Outbox) -> list[int]:
    """One crawl of ``valley``, every found article processed and planned; the planned share ids."""
    with outbox.rt.session() as session:
        source_id = sync_sources(session, outbox.rt.config)["valley"]
    planned: list[int] = []
    for article_id in crawl_source(outbox.rt, source_id):
        outcome = process_article(outbox.rt, article_id)
        if outcome.share:
            planned += plan_shares(outbox.rt, article_id)
    return planned


def test_first_crawl_is_back_catalogue_and_a_later_new_article_is_shared(
    make_outbox: Callable[..., Outbox], crawl_site: HTTPTestServer, tmp_path: Path
) -> None:
    outbox = crawl_outbox(make_outbox, crawl_site, [file_endpoint()])
    assert crawl_and_plan(outbox) == []
    assert outbox.shares() == []
    assert not (tmp_path / "archive.jsonl").exists()

    # The second crawl finds one new story: that is news, and it is shared.
    crawl_site.content(
        "/news/", (LISTING % '<li><a class="post-link" href="/news/new.html">New</a></li>').encode()
    )
    crawl_site.content("/news/new.html", NEW_STORY % b"2024-04-20T08:00:00Z")
    [share_id] = crawl_and_plan(outbox)
    assert deliver_share(outbox.rt, share_id) == "sent"
    [line] = (tmp_path / "archive.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["data"]["title"] == "Harbour opens a second quay"


def test_max_age_lets_a_recent_story_of_the_first_crawl_through(
    make_outbox: Callable[..., Outbox], crawl_site: HTTPTestServer
) -> None:
    recent = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    crawl_site.content(
        "/news/", (LISTING % '<li><a class="post-link" href="/news/new.html">New</a></li>').encode()
    )
    crawl_site.content("/news/new.html", NEW_STORY % recent)
    outbox = crawl_outbox(make_outbox, crawl_site, [file_endpoint(max_age="1d"), file_endpoint("strict")])
    planned = crawl_and_plan(outbox)
    # The 2024 stories are older than a day; the three-hour-old one is still news.
    assert [outbox.routed(i) for i in planned] == [("archive", "Harbour opens a second quay")]


def test_back_catalogue_true_shares_the_first_crawl(
    make_outbox: Callable[..., Outbox], crawl_site: HTTPTestServer
) -> None:
    outbox = crawl_outbox(
        make_outbox, crawl_site, [file_endpoint(back_catalogue=True), file_endpoint("news")]
    )
    planned = crawl_and_plan(outbox)
    assert len(planned) == 3
    assert {outbox.share(i).endpoint for i in planned} == {"archive"}


def test_an_endpoint_added_later_does_not_post_older_articles(make_outbox: Callable[..., Outbox]) -> None:
    outbox = make_outbox([file_endpoint("first")])
    old = outbox.article("Older story")  # seen after "first" was added, before "late" was
    [first_share] = plan_shares(outbox.rt, old)
    assert outbox.share(first_share).endpoint == "first"

    later = Outbox(outbox.runtime([file_endpoint("first"), file_endpoint("late")]), outbox.build)
    with later.rt.session() as session:
        sync_sources(session, later.rt.config)  # the deploy that added "late"
    # Only the still pending share of "first" comes back; "late" leaves the older article alone.
    assert plan_shares(later.rt, old) == [first_share]
    assert [s.endpoint for s in later.shares()] == ["first"]

    new = later.article("Newer story")
    assert sorted(later.share(i).endpoint for i in plan_shares(later.rt, new)) == ["first", "late"]

    # An operator shares the old one on purpose (`syndicate share send`).
    [forced] = [i for i in plan_shares(later.rt, old, force=["late"]) if later.share(i).endpoint == "late"]
    assert deliver_share(later.rt, forced) == "sent"


def test_force_shares_back_catalogue_and_unrouted_articles_and_requeues_failed_ones(
    make_outbox: Callable[..., Outbox],
) -> None:
    outbox = make_outbox([file_endpoint("it-only", feeds=["it"])])
    old = outbox.article("Farm story", category="Agriculture", backfill=True)
    assert plan_shares(outbox.rt, old) == []
    [share_id] = plan_shares(outbox.rt, old, force=["it-only"])
    outbox.set(share_id, status="failed", attempts=3, error="boom")
    assert plan_shares(outbox.rt, old) == []  # a failed share is not handed out again by itself
    assert plan_shares(outbox.rt, old, force=["it-only"]) == [share_id]
    row = outbox.share(share_id)
    assert (row.status, row.attempts) == ("pending", 0)


# ---------------------------------------------------------------- routing


def test_routing_by_feeds_sources_categories_tags_and_languages(make_outbox: Callable[..., Outbox]) -> None:
    outbox = make_outbox(
        [
            file_endpoint("everything"),
            file_endpoint("it-feed", feeds=["it"]),
            file_endpoint("harbour-only", sources=["harbour"]),
            file_endpoint("farming", categories=["AGRICULTURE"]),
            file_endpoint("energy", tags=["energy", "Solar Power"]),
            file_endpoint("portuguese", languages=["pt"]),
            file_endpoint("both", categories=["IT Systems"], tags=["solar power"]),
            file_endpoint("paused", enabled=False),
        ]
    )
    articles = {
        "solar": outbox.article("Solar", category="it systems", tags=["SOLAR POWER"], language="en"),
        "farm": outbox.article("Farm", category="Agriculture", tags=["seeds"], language="ro"),
        "port": outbox.article(
            "Porto", source="harbour", category="Logistics", tags=["Energy"], language="pt-BR"
        ),
        "robot": outbox.article("Robots", category="IT Systems", tags=["robots"], language=None),
    }
    routed: dict[str, set[str]] = {}
    for name, article_id in articles.items():
        for share_id in plan_shares(outbox.rt, article_id):
            routed.setdefault(outbox.share(share_id).endpoint, set()).add(name)
    assert routed == {
        "everything": {"solar", "farm", "port", "robot"},
        "it-feed": {"solar", "robot"},  # the feed's category filter, any case
        "harbour-only": {"port"},
        "farming": {"farm"},
        "energy": {"solar", "port"},  # any one tag, any case
        "portuguese": {"port"},  # pt-BR is Portuguese
        "both": {"solar"},  # every rule must hold
    }


# ---------------------------------------------------------------- delay and quiet hours


def test_delay_defers_until_not_before(make_outbox: Callable[..., Outbox], receiver: Receiver) -> None:
    outbox = make_outbox([hook(receiver.url, delay="10m")])
    before = utcnow()
    share_id = outbox.plan_one(outbox.article(), "hook")
    row = outbox.share(share_id)
    assert row.not_before is not None and row.not_before - before >= timedelta(minutes=10)
    with pytest.raises(Deferred, match="scheduled time") as info:
        deliver_share(outbox.rt, share_id)
    assert 590 <= info.value.seconds <= 600
    assert receiver.received == [] and outbox.share(share_id).status == "pending"
    outbox.due(share_id)
    assert deliver_share(outbox.rt, share_id) == "sent"
    assert len(receiver.received) == 1


def quiet(start: str, end: str, zone: str = "UTC") -> Any:
    """An endpoint config with quiet hours ``start``-``end`` in ``zone``."""
    return parse_config(
        {"endpoints": [file_endpoint(quiet_hours={"start": start, "end": end, "timezone": zone})]}
    ).endpoints[0]


@pytest.mark.parametrize(
    ("start", "end", "zone", "now", "wait"),
    [
        # Bucharest is UTC+3 in May: 20:30 UTC is 23:30 there, 7.5 hours before 07:00.
        ("22:00", "07:00", "Europe/Bucharest", datetime(2024, 5, 1, 20, 30, tzinfo=UTC), 7.5 * 3600),
        # After midnight, inside the same window.
        ("22:00", "07:00", "Europe/Bucharest", datetime(2024, 5, 2, 3, 59, 30, tzinfo=UTC), 30.0),
        ("22:00", "07:00", "Europe/Bucharest", datetime(2024, 5, 2, 4, 0, tzinfo=UTC), 0.0),
        ("22:00", "07:00", "Europe/Bucharest", datetime(2024, 5, 1, 12, 0, tzinfo=UTC), 0.0),
        ("22:00", "07:00", "Europe/Bucharest", datetime(2024, 5, 1, 19, 0, tzinfo=UTC), 9 * 3600),
        # Winter: UTC+2, so 21:00 UTC is 23:00 there.
        ("22:00", "07:00", "Europe/Bucharest", datetime(2024, 1, 15, 21, 0, tzinfo=UTC), 8 * 3600),
        # A window inside one day, in a zone west of UTC (New York is UTC-4 in May).
        ("09:00", "17:00", "America/New_York", datetime(2024, 5, 1, 13, 0, tzinfo=UTC), 8 * 3600),
        ("09:00", "17:00", "America/New_York", datetime(2024, 5, 1, 21, 0, tzinfo=UTC), 0.0),
        # The same instant is quiet in Tokyo (23:00) and not in UTC (14:00).
        ("22:00", "06:00", "Asia/Tokyo", datetime(2024, 5, 1, 14, 0, tzinfo=UTC), 7 * 3600),
        ("22:00", "06:00", "UTC", datetime(2024, 5, 1, 14, 0, tzinfo=UTC), 0.0),
        # start == end is no window at all.
        ("08:00", "08:00", "UTC", datetime(2024, 5, 1, 8, 0, tzinfo=UTC), 0.0),
        # Clocks go forward at 03:00 on 31 March: from local midnight to 07:00 is six real hours.
        ("22:00", "07:00", "Europe/Bucharest", datetime(2024, 3, 30, 22, 0, tzinfo=UTC), 6 * 3600),
        # And back at 04:00 on 27 October: eight real hours.
        ("22:00", "07:00", "Europe/Bucharest", datetime(2024, 10, 26, 21, 0, tzinfo=UTC), 8 * 3600),
    ],
)
def test_quiet_wait(start: str, end: str, zone: str, now: datetime, wait: float) -> None:
    assert quiet_wait(quiet(start, end, zone), now) == pytest.approx(wait)
    if wait:
        # Waiting that long always lands outside the window.
        assert quiet_wait(quiet(start, end, zone), now + timedelta(seconds=wait)) == 0.0


def test_quiet_hours_defer_delivery(make_outbox: Callable[..., Outbox], receiver: Receiver) -> None:
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    outbox = make_outbox([hook(receiver.url, quiet_hours=window)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    with pytest.raises(Deferred, match="quiet hours") as info:
        deliver_share(outbox.rt, share_id)
    assert 0 < info.value.seconds <= 3600
    assert receiver.received == [] and outbox.share(share_id).status == "pending"


# ---------------------------------------------------------------- pacing in Redis


def test_min_interval_is_shared_by_two_workers(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url, min_interval="1m")])
    first = outbox.plan_one(outbox.article("First"), "hook")
    second = outbox.plan_one(outbox.article("Second"), "hook")
    other_worker = outbox.runtime()
    assert deliver_share(outbox.rt, first) == "sent"
    with pytest.raises(Deferred, match="paced") as info:
        deliver_share(other_worker, second)
    assert 55 <= info.value.seconds <= 60
    assert receiver.titles() == ["First"] and outbox.share(second).status == "pending"


def test_max_per_hour_is_shared_by_two_workers(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url, max_per_hour=2)])
    ids = [outbox.plan_one(outbox.article(f"Story {n}"), "hook") for n in range(3)]
    other_worker = outbox.runtime()
    assert deliver_share(outbox.rt, ids[0]) == "sent"
    assert deliver_share(other_worker, ids[1]) == "sent"
    with pytest.raises(Deferred, match="paced") as info:
        deliver_share(outbox.rt, ids[2])
    # The hour's budget frees up when the first post is an hour old.
    assert 3500 <= info.value.seconds <= 3600
    assert len(receiver.received) == 2


def test_a_paced_endpoint_drains_its_backlog_oldest_first(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url, max_per_hour=100)])
    now = utcnow()
    ids = {
        title: outbox.plan_one(outbox.article(title, published=now - timedelta(hours=hours)), "hook")
        for title, hours in (("Newest", 1), ("Oldest", 3), ("Middle", 2))
    }
    # Every message stands for one slot; the newest story's message keeps hopping until it is next.
    for _ in range(2):
        with pytest.raises(Deferred, match="older story"):
            deliver_share(outbox.rt, ids["Newest"])
    assert deliver_share(outbox.rt, ids["Newest"]) == "sent"
    assert receiver.titles() == ["Oldest", "Middle", "Newest"]
    assert {outbox.share(i).status for i in ids.values()} == {"sent"}


def test_429_blocks_only_that_endpoint(
    make_outbox: Callable[..., Outbox], make_receiver: Callable[[], Receiver]
) -> None:
    busy, calm = make_receiver(), make_receiver()
    busy.default = Answer(429, {"error": "slow down"}, {"Retry-After": "120"})
    outbox = make_outbox([hook(busy.url, "busy"), hook(calm.url, "calm")])
    first, second = outbox.article("First"), outbox.article("Second")
    with pytest.raises(Deferred) as info:
        deliver_share(outbox.rt, outbox.plan_one(first, "busy"))
    assert info.value.seconds == 120  # Retry-After beats the 5 s of the schedule
    # The next post to that network waits for the block without a request...
    with pytest.raises(Deferred, match="rate-limited") as blocked:
        deliver_share(outbox.runtime(), outbox.plan_one(second, "busy"))
    assert 115 <= blocked.value.seconds <= 120
    assert len(busy.received) == 1
    # ...and another endpoint is not held up.
    assert deliver_share(outbox.rt, outbox.plan_one(first, "calm")) == "sent"
    assert deliver_share(outbox.rt, outbox.plan_one(second, "calm")) == "sent"
    assert calm.titles() == ["First", "Second"]


# ---------------------------------------------------------------- endpoints disabled by their errors


@pytest.mark.parametrize("status", [401, 403, 404, 410, 301])
def test_an_endpoint_error_disables_the_endpoint_and_holds_its_shares(
    make_outbox: Callable[..., Outbox], receiver: Receiver, status: int
) -> None:
    receiver.script = [
        Answer(status, {"error": "webhook revoked"}, {"Location": "https://elsewhere.example/"})
    ]
    outbox = make_outbox([hook(receiver.url), file_endpoint()])
    first = outbox.plan_one(outbox.article("First"), "hook")
    second = outbox.plan_one(outbox.article("Second"), "hook")
    assert deliver_share(outbox.rt, first) == "failed"
    assert f"HTTP {status}" in (outbox.share(first).error or "")

    row = outbox.endpoint_row("hook")
    assert row.disabled_at is not None and f"HTTP {status}" in (row.disabled_reason or "")
    # The other shares of that endpoint wait; nothing is sent while it is disabled.
    assert deliver_share(outbox.rt, second) == "held"
    assert outbox.share(second).status == "pending" and len(receiver.received) == 1
    snap = {e["name"]: e for e in outbox.status()["endpoints"]}
    assert snap["hook"]["enabled"] is False and f"HTTP {status}" in snap["hook"]["disabled_reason"]
    assert snap["hook"]["failed"] == 1 and snap["hook"]["pending"] == 1
    assert snap["archive"]["enabled"] is True
    assert SECRET not in json.dumps(snap)

    # The operator fixed it: enabling returns the pending shares to deliver.
    assert set_endpoint_enabled(outbox.rt, "hook", True) == [second]
    assert deliver_share(outbox.rt, second) == "sent"
    assert outbox.endpoint_row("hook").disabled_at is None


@pytest.mark.parametrize("status", [400, 413, 422])
def test_other_client_errors_fail_only_the_share(
    make_outbox: Callable[..., Outbox], receiver: Receiver, status: int
) -> None:
    receiver.script = [Answer(status, {"error": "bad payload"})]
    outbox = make_outbox([hook(receiver.url)])
    first = outbox.plan_one(outbox.article("First"), "hook")
    second = outbox.plan_one(outbox.article("Second"), "hook")
    assert deliver_share(outbox.rt, first) == "failed"
    assert outbox.endpoint_row("hook").disabled_at is None
    assert deliver_share(outbox.rt, second) == "sent"


def test_an_operator_disables_and_enables_an_endpoint(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    assert set_endpoint_enabled(outbox.rt, "hook", False) == []
    assert outbox.endpoint_row("hook").disabled_reason == "disabled by an operator"
    assert deliver_share(outbox.rt, share_id) == "held"
    assert receiver.received == []
    assert set_endpoint_enabled(outbox.rt, "hook", True) == [share_id]
    assert deliver_share(outbox.rt, share_id) == "sent"
    with pytest.raises(KeyError):
        set_endpoint_enabled(outbox.rt, "nope", True)


# ---------------------------------------------------------------- exactly once


class NoLookupWebhook(WebhookEndpoint):
    """A network with neither idempotency keys nor a way to find a post (like a plain chat webhook)."""

    idempotent = False

    def lookup(self, preview: Preview, idempotency_key: str) -> ShareResult | None:
        """This network cannot tell whether a post went out."""
        raise NotImplementedError


class FindingWebhook(WebhookEndpoint):
    """A non-idempotent network that can look its posts up (it finds every one)."""

    idempotent = False
    lookups: ClassVar[list[str]] = []

    def lookup(self, preview: Preview, idempotency_key: str) -> ShareResult | None:
        """Found: the post is there."""
        self.lookups.append(idempotency_key)
        return ShareResult(remote_id="found-1", remote_url="https://network.example/p/found-1")


class DuplicateWebhook(WebhookEndpoint):
    """A network that answers "already posted" (X's duplicate content, Facebook's 506)."""

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Send, then report what the network said: a duplicate."""
        super().publish(preview, idempotency_key)
        return ShareResult(remote_id="dup-1", duplicate=True)


def test_a_fresh_sending_claim_is_left_to_its_worker(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    outbox.set(share_id, status="sending", claimed_at=utcnow() - timedelta(seconds=5))
    with pytest.raises(Deferred, match="another worker") as info:
        deliver_share(outbox.rt, share_id)
    assert 0 < info.value.seconds <= outbox.rt.claim_lease
    assert receiver.received == [] and outbox.share(share_id).status == "sending"


def test_a_claim_whose_sending_lease_expired_is_recovered_long_before_the_claim_lease(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    """A worker that died mid-send stops refreshing its lease: its claim is dead after SENDING_TTL
    (the sweep finds it then), not after the task time limit; a live holder's lease keeps it."""
    from worker.sendslots import SENDING_TTL, SendingLeases

    outbox = make_outbox([hook(receiver.url)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    age = SENDING_TTL + 5
    assert age < outbox.rt.claim_lease / 2  # far inside the old lease (300 s by default)
    outbox.set(share_id, status="sending", claimed_at=utcnow() - timedelta(seconds=age))
    other_process = SendingLeases(redis.Redis.from_url(outbox.rt.settings.effective_redis_url))
    with other_process.hold(share_id):  # its holder is alive (another process's leases)
        assert stale_shares(outbox.rt, timedelta(minutes=10)) == []
        with pytest.raises(Deferred, match="another worker"):
            deliver_share(outbox.rt, share_id)
        assert receiver.received == []
    # The holder is gone (its lease expired or was released): recovered at once.
    assert stale_shares(outbox.rt, timedelta(minutes=10)) == [share_id]
    assert deliver_share(outbox.rt, share_id) == "sent"
    assert len(receiver.received) == 1


def test_a_delivery_holds_its_sending_lease_until_its_outcome_is_committed(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    import threading

    from worker.sendslots import SENDING_PREFIX

    receiver.script = [Answer(200, delay=1.0)]
    outbox = make_outbox([hook(receiver.url)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    client = redis.Redis.from_url(outbox.rt.settings.effective_redis_url)
    key = SENDING_PREFIX + str(share_id)
    outcome: list[str] = []
    sender = threading.Thread(target=lambda: outcome.append(deliver_share(outbox.rt, share_id)))
    sender.start()
    seen: list[tuple[Any, str]] = []
    while sender.is_alive():
        seen.append((client.get(key), outbox.share(share_id).status))
        time.sleep(0.05)
    sender.join()
    assert outcome == ["sent"]
    assert any(value is not None and status == "sending" for value, status in seen), seen
    assert client.get(key) is None  # released once the outcome was committed
    assert client.ttl(key) == -2


def test_a_stale_claim_on_an_idempotent_endpoint_is_sent_again_with_the_same_webhook_id(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    receiver.script = [Answer(503, {"error": "busy"})]
    outbox = make_outbox([hook(receiver.url)])
    article_id = outbox.article()
    share_id = outbox.plan_one(article_id, "hook")
    with pytest.raises(Deferred):
        deliver_share(outbox.rt, share_id)
    # The next attempt's worker died after its request went out: its claim is older than the lease.
    outbox.set(share_id, status="sending", claimed_at=utcnow() - timedelta(seconds=outbox.rt.claim_lease + 5))
    assert stale_shares(outbox.rt, timedelta(minutes=10)) == [share_id]
    assert deliver_share(outbox.rt, share_id) == "sent"
    with outbox.rt.session() as session:
        article = session.get(Article, article_id)
        assert article is not None
        key = idempotency_key(share_article_view(article), "hook")
    assert receiver.ids() == [key, key]
    headers, body = receiver.received[-1]
    assert standardwebhooks.Webhook(SECRET).verify(body, headers)["data"]["article_id"] == article_id


def test_a_stale_claim_on_a_network_that_cannot_tell_becomes_uncertain(
    make_outbox: Callable[..., Outbox], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(share_pkg.ENDPOINTS, "webhook", NoLookupWebhook)
    outbox = make_outbox([hook(receiver.url)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    outbox.set(share_id, status="sending", claimed_at=utcnow() - timedelta(seconds=outbox.rt.claim_lease + 5))
    assert deliver_share(outbox.rt, share_id) == "uncertain"
    row = outbox.share(share_id)
    assert row.status == "uncertain" and "syndicate share retry" in (row.error or "")
    assert receiver.received == []  # never a second request
    assert deliver_share(outbox.rt, share_id) == "uncertain"
    assert receiver.received == []
    assert outbox.status()["endpoints"][0]["uncertain"] == 1


def test_a_read_timeout_on_a_non_idempotent_network_is_uncertain(
    make_outbox: Callable[..., Outbox], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(share_pkg.ENDPOINTS, "webhook", NoLookupWebhook)
    receiver.script = [Answer(200, delay=1.5)]
    outbox = make_outbox([hook(receiver.url)])
    outbox.rt.share_http = HttpClient(timeout=0.3)  # this process's pooled client, impatient
    share_id = outbox.plan_one(outbox.article(), "hook")
    assert deliver_share(outbox.rt, share_id) == "uncertain"
    row = outbox.share(share_id)
    assert "the post may exist" in (row.error or "") and SECRET not in (row.error or "")
    assert len(receiver.received) == 1


def test_a_read_timeout_on_a_network_with_lookup_finds_the_post(
    make_outbox: Callable[..., Outbox], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(share_pkg.ENDPOINTS, "webhook", FindingWebhook)
    FindingWebhook.lookups.clear()
    receiver.script = [Answer(200, delay=1.5)]
    outbox = make_outbox([hook(receiver.url)])
    outbox.rt.share_http = HttpClient(timeout=0.3)
    share_id = outbox.plan_one(outbox.article(), "hook")
    assert deliver_share(outbox.rt, share_id) == "sent"
    row = outbox.share(share_id)
    assert (row.remote_id, row.remote_url) == ("found-1", "https://network.example/p/found-1")
    assert len(receiver.received) == 1 and len(FindingWebhook.lookups) == 1


def test_a_read_timeout_on_an_idempotent_endpoint_retries_on_the_schedule(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    receiver.script = [Answer(200, delay=1.5)]
    outbox = make_outbox([hook(receiver.url)])
    outbox.rt.share_http = HttpClient(timeout=0.3)
    share_id = outbox.plan_one(outbox.article(), "hook")
    with pytest.raises(Deferred) as info:
        deliver_share(outbox.rt, share_id)
    assert info.value.seconds == RETRY_SCHEDULE[0]
    outbox.due(share_id)
    assert deliver_share(outbox.rt, share_id) == "sent"
    assert len(set(receiver.ids())) == 1 and len(receiver.received) == 2


def test_a_duplicate_answer_counts_as_sent(
    make_outbox: Callable[..., Outbox], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(share_pkg.ENDPOINTS, "webhook", DuplicateWebhook)
    outbox = make_outbox([hook(receiver.url)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    assert deliver_share(outbox.rt, share_id) == "sent"
    row = outbox.share(share_id)
    assert row.remote_id == "dup-1" and "duplicate" in (row.error or "")


def test_the_retry_schedule_then_failure(make_outbox: Callable[..., Outbox], receiver: Receiver) -> None:
    receiver.default = Answer(503, {"error": "down"})
    outbox = make_outbox([hook(receiver.url)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    for attempt, wait in enumerate(RETRY_SCHEDULE, start=1):
        before = utcnow()
        with pytest.raises(Deferred) as info:
            deliver_share(outbox.rt, share_id)
        assert info.value.seconds == wait
        row = outbox.share(share_id)
        assert (row.status, row.attempts) == ("pending", attempt)
        assert row.not_before is not None and row.not_before - before >= timedelta(seconds=wait)
        outbox.due(share_id)
    assert deliver_share(outbox.rt, share_id) == "failed"
    row = outbox.share(share_id)
    assert f"gave up after {len(RETRY_SCHEDULE) + 1} attempts" in (row.error or "") and "HTTP 503" in (
        row.error or ""
    )
    assert len(receiver.received) == len(RETRY_SCHEDULE) + 1
    assert outbox.endpoint_row("hook").disabled_at is None  # an outage does not disable


def test_retry_share_and_mark_sent(
    make_outbox: Callable[..., Outbox], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(share_pkg.ENDPOINTS, "webhook", NoLookupWebhook)
    outbox = make_outbox([hook(receiver.url)])
    lost = utcnow() - timedelta(seconds=outbox.rt.claim_lease + 5)
    first = outbox.plan_one(outbox.article("First"), "hook")
    second = outbox.plan_one(outbox.article("Second"), "hook")
    for share_id in (first, second):
        outbox.set(share_id, status="sending", claimed_at=lost)
        assert deliver_share(outbox.rt, share_id) == "uncertain"

    # The operator checked: the first did not go out (retry), the second did (mark sent).
    assert retry_share(outbox.rt, first) is True
    row = outbox.share(first)
    assert (row.status, row.attempts, row.not_before, row.claimed_at) == ("pending", 0, None, None)
    assert deliver_share(outbox.rt, first) == "sent"
    assert retry_share(outbox.rt, first) is False  # sent is final

    assert mark_sent(outbox.rt, second, "https://network.example/p/2") is True
    row = outbox.share(second)
    assert row.status == "sent" and row.remote_url == "https://network.example/p/2" and row.sent_at
    assert mark_sent(outbox.rt, second) is False
    assert retry_share(outbox.rt, 999_999) is False and mark_sent(outbox.rt, 999_999) is False
    assert receiver.titles() == ["First"]


def test_a_transient_error_never_escapes_as_a_celery_retry(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    receiver.script = [Answer(502, {"error": "gateway"})]
    outbox = make_outbox([hook(receiver.url)])
    share_id = outbox.plan_one(outbox.article(), "hook")
    with pytest.raises(Deferred) as info:
        deliver_share(outbox.rt, share_id)
    assert not isinstance(info.value, TransientShareError)
    assert "HTTP 502" in (outbox.share(share_id).error or "")


# ---------------------------------------------------------------- previews and credentials


def test_preview_returns_text_payload_and_notes_and_sends_nothing(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    outbox = make_outbox([hook(receiver.url, feeds=["it"]), file_endpoint(), file_endpoint("fresh-only")])
    old = outbox.article("Old farm story", category="Agriculture", backfill=True)
    entries = {e["endpoint"]: e for e in preview_article(outbox.rt, str(old))}
    assert entries["hook"]["note"] == "not routed to this endpoint"
    assert entries["archive"]["note"].startswith("back catalogue")
    assert entries["hook"]["kind"] == "webhook"
    assert entries["hook"]["text"].startswith("Old farm story")
    assert entries["hook"]["payload"]["type"] == "article.published"
    assert entries["hook"]["payload"]["data"]["article_id"] == old
    assert entries["hook"]["length"] == len(entries["hook"]["text"])

    new = outbox.article("Solar lab opens", category="IT Systems", image="https://valley.example/lab.jpg")
    with outbox.rt.session() as session:
        article = session.get(Article, new)
        assert article is not None
        url = article.url
    [entry] = preview_article(outbox.rt, url, "hook")  # by URL, one endpoint
    assert entry["note"] is None and entry["image"] == "https://valley.example/lab.jpg"
    assert receiver.received == [] and outbox.shares() == []
    assert SECRET not in json.dumps(preview_article(outbox.rt, str(new)))
    with pytest.raises(LookupError):
        preview_article(outbox.rt, str(new), "nope")
    with pytest.raises(LookupError):
        preview_article(outbox.rt, "https://nowhere.example/")


def test_credentials_never_reach_share_errors_or_status(
    make_outbox: Callable[..., Outbox], receiver: Receiver
) -> None:
    # A receiver that echoes secrets back (a debugging proxy, a badly written endpoint).
    receiver.script = [
        Answer(400, {"error": f"signature made with {SECRET} does not match"}),
        Answer(401, {"error": f"secret {SECRET} revoked"}),
    ]
    outbox = make_outbox([hook(receiver.url)])
    first = outbox.plan_one(outbox.article("First"), "hook")
    second = outbox.plan_one(outbox.article("Second"), "hook")
    assert deliver_share(outbox.rt, first) == "failed"
    assert deliver_share(outbox.rt, second) == "failed"
    for share_id in (first, second):
        error = outbox.share(share_id).error or ""
        assert "***" in error and SECRET not in error
    row = outbox.endpoint_row("hook")
    assert SECRET not in (row.disabled_reason or "") + (row.last_error or "")
    assert SECRET not in json.dumps(outbox.status())
