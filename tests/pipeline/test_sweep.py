"""The sweep (worker/ops/sweep.py): each orphan kind is found, and work that is only queued, held by a live
worker, too young or held on purpose is not; the work markers the signal handlers write; the lock.

Real database (SQLite and PostgreSQL through ``make_pipe``), real Redis for the markers and heartbeats,
a real webhook receiver; the stage functions are called directly (no Celery), as in the other pipeline
tests. Markers are written through the same functions the signal handlers call.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import redis
from celery import Celery
from kombu import Connection
from sqlalchemy import update

from tests.pipeline.conftest import Pipe
from tests.pipeline.receivers import Answer, Receiver
from tests.support.services import RedisServer
from worker import feedcache, redisclient
from worker.app import app as celery_app
from worker.errors import FeedExportError
from worker.ops import broker as broker_view
from worker.ops import heartbeat, sweep
from worker.ops.sweep import stale_work
from worker.outbox.delivery import deliver_share
from worker.outbox.endpoints import set_endpoint_enabled
from worker.outbox.planning import plan_shares
from worker.render import render_current
from worker.store.models import Article, FeedRender, Share, Source, utcnow
from worker.stories.assign import assign_article

SECRET = "whsec_" + base64.b64encode(b"sweep-test-secret-of-32-bytes!!!").decode()
ENV = {"HOOK_SECRET": SECRET}
LONG_AGO = timedelta(minutes=5)


@pytest.fixture
def broker_url(redis_server: RedisServer) -> str:
    """A Redis database of its own: broker (queues), markers, node boots, heartbeats."""
    return redis_server.url.rsplit("/", 1)[0] + "/9"


@pytest.fixture
def client(broker_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """That database, flushed; the marker signal handlers write to it too."""
    conn = redis.Redis.from_url(broker_url)
    conn.flushdb()
    monkeypatch.setattr(redisclient, "_bookkeeping", conn)
    yield conn
    conn.flushdb()


@pytest.fixture
def broker(broker_url: str, client: redis.Redis) -> Iterator[Celery]:
    """A Celery app of its own on that database, to send real task messages to the real queues."""
    app = Celery("sweep-test", broker=broker_url)
    yield app
    app.close()


def enqueue(broker: Celery, task: str, work_id: object) -> str:
    """Send a real message for ``task`` to its queue (what ``.delay`` does; the publish handler marks
    it queued); return its task id."""
    queue = str(celery_app.conf.task_routes[task]["queue"])
    return str(broker.send_task(task, args=[work_id], queue=queue).id)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver that answers 200 (script it for other answers)."""
    recv = Receiver()
    recv.thread.start()
    yield recv
    recv.server.shutdown()
    recv.server.server_close()


def hook(url: str, **extra: Any) -> dict[str, Any]:
    """A webhook endpoint that wants the back catalogue too (first-crawl articles are shared)."""
    return {
        "name": "hook",
        "kind": "webhook",
        "url": url,
        "secret": "${HOOK_SECRET}",
        "back_catalogue": True,
        **extra,
    }


def make(make_pipe: Callable[..., Pipe], site_config: dict[str, Any], *endpoints: dict[str, Any]) -> Pipe:
    site_config["endpoints"] = list(endpoints)
    return make_pipe(site_config, ENV)


def age(pipe: Pipe, model: Any, ids: list[int], **columns: object) -> None:
    with pipe.rt.session() as session:
        session.execute(update(model).where(model.id.in_(ids)).values(**columns))


def live(client: redis.Redis, node: str, boot: str) -> None:
    """Make ``node`` a live worker node with boot ``boot`` (what its signal handlers write)."""
    heartbeat.beat(client, heartbeat.WORKERS_KEY, node)
    sweep.register_node(client, node, boot)


def test_pending_articles_are_orphans_unless_young_queued_or_held_by_a_live_node(
    pipe: Pipe, client: redis.Redis, broker: Celery
) -> None:
    ids = pipe.crawl("valley")
    assert len(ids) == 3
    assert sweep.find_orphans(pipe.rt, client).articles == []  # just stored: their messages may be on the way

    age(pipe, Article, ids, last_seen_at=utcnow() - LONG_AGO)
    assert sweep.find_orphans(pipe.rt, client).articles == ids  # no marker: the messages were lost

    queued, held, dead = ids
    enqueue(broker, "syndicate.process_article", queued)
    live(client, "w1@host", "boot-a")
    sweep.mark_received(client, "syndicate.process_article", "t2", [held], "w1@host")
    client.set(sweep.marker_key("process", held), sweep.held_marker("w1@host", "t2", "boot-a"))
    # Held by a node that was restarted under the same name: the old boot's messages died with it.
    client.set(sweep.marker_key("process", dead), sweep.held_marker("w1@host", "t3", "boot-old"))
    assert sweep.find_orphans(pipe.rt, client).articles == [dead]

    # The live node's heartbeat goes stale: what it held is orphaned too.
    client.hset(heartbeat.WORKERS_KEY, "w1@host", f"{time.time() - sweep.NODE_STALE_AFTER - 5:.6f}")
    assert sweep.find_orphans(pipe.rt, client).articles == [held, dead]

    # A flushed Redis loses the markers with the messages: every pending article is an orphan again.
    client.flushdb()
    assert sweep.find_orphans(pipe.rt, client).articles == ids
    pipe.process(ids)
    assert sweep.find_orphans(pipe.rt, client).articles == []


def test_a_queued_marker_counts_only_while_the_broker_backs_it(
    pipe: Pipe, client: redis.Redis, broker: Celery, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A "queued" marker whose message a worker took but never marked held (it died in between), or
    whose message is in no queue, covers nothing: the sweep does not wait an hour for kombu."""
    ids = pipe.crawl("valley")
    age(pipe, Article, ids, last_seen_at=utcnow() - LONG_AGO)
    taken, _waiting, lost = ids  # the middle one stays queued throughout
    task_ids = {article_id: enqueue(broker, "syndicate.process_article", article_id) for article_id in ids}
    assert all(client.get(sweep.marker_key("process", i)) == f"q|{task_ids[i]}".encode() for i in ids)
    assert sweep.find_orphans(pipe.rt, client).articles == []  # all three wait in the fetch queue

    # ``lost``'s message vanishes (popped and never filed; a Redis restored from an older snapshot).
    messages = cast(list[bytes], client.lrange("fetch", 0, -1))
    [raw] = [m for m in messages if task_ids[lost].encode() in m]
    assert client.lrem("fetch", 1, raw.decode()) == 1
    found = sweep.find_orphans(pipe.rt, client)
    assert found.articles == [lost]
    assert found.why == {f"process:{lost}": "marked queued, but its message is in no queue and not taken"}

    # A queue too long to read to its end backs what it may hold.
    monkeypatch.setattr(broker_view, "SCAN_PAGE", 1)
    monkeypatch.setattr(broker_view, "SCAN_LIMIT", 1)
    assert sweep.find_orphans(pipe.rt, client).articles == []
    monkeypatch.undo()
    monkeypatch.setattr(redisclient, "_bookkeeping", client)

    # A worker takes ``taken``'s message as kombu does (filed in ``unacked``) and does not mark it.
    with Connection(broker_url) as conn:
        queue = conn.SimpleQueue("fetch")
        message = queue.get(timeout=5)
        assert message.headers["id"] == task_ids[taken]
        assert broker_view.taken(client).keys() == {task_ids[taken]}
        # Just taken: the worker is about to mark it.
        assert sweep.find_orphans(pipe.rt, client).articles == [lost]
        # Taken longer ago than a live worker needs to mark it: the worker died in between.
        [tag] = cast(list[bytes], client.hkeys(broker_view.UNACKED))
        client.zadd(broker_view.UNACKED_INDEX, {tag: time.time() - sweep.TAKEN_GRACE - 1})
        found = sweep.find_orphans(pipe.rt, client)
        assert found.articles == [taken, lost]
        assert found.why[f"process:{taken}"].startswith("marked queued, but a worker took its message")
        # Once the worker marks it held (a live node), it is covered again.
        live(client, "w1@host", sweep.BOOT)
        sweep.mark_received(client, "syndicate.process_article", task_ids[taken], [taken], "w1@host")
        assert sweep.find_orphans(pipe.rt, client).articles == [lost]
        queue.close()


def test_a_message_held_for_its_eta_is_backed_until_then(
    pipe: Pipe, client: redis.Redis, broker: Celery, broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rescheduled task (a countdown: the host was busy) is taken by a worker at once and held there
    until its ETA, under its "queued" marker; it is not an orphan before its ETA plus the grace (the
    sweep ran such fetches a second time, ahead of their turn: test_scale_out saw pages fetched twice).
    One whose ETA and grace have passed unmarked was held by a worker that died."""
    waiting, overdue, *_ = pipe.crawl("valley")
    age(pipe, Article, [waiting, overdue], last_seen_at=utcnow() - LONG_AGO)
    queue_name = str(celery_app.conf.task_routes["syndicate.process_article"]["queue"])
    later = broker.send_task("syndicate.process_article", args=[waiting], queue=queue_name, countdown=60)
    past = datetime.now(UTC) - timedelta(seconds=sweep.TAKEN_GRACE + 5)
    earlier = broker.send_task("syndicate.process_article", args=[overdue], queue=queue_name, eta=past)
    monkeypatch.setattr(redisclient, "_bookkeeping", client)
    with Connection(broker_url) as conn:
        queue = conn.SimpleQueue(queue_name)
        held = {str(queue.get(timeout=5).headers["id"]) for _ in range(2)}
        assert held == {str(later.id), str(earlier.id)}
        # Both taken long ago by the unacked index, as a worker holding them would have.
        for tag in cast(list[bytes], client.hkeys(broker_view.UNACKED)):
            client.zadd(broker_view.UNACKED_INDEX, {tag: time.time() - sweep.TAKEN_GRACE - 30})
        assert broker_view.taken(client)[str(later.id)] > time.time() + 30
        found = sweep.find_orphans(pipe.rt, client)
        assert waiting not in found.articles, found
        assert overdue in found.articles, found
        queue.close()


def test_a_recrawl_resends_only_pending_articles_no_live_message_covers(
    pipe: Pipe, client: redis.Redis, broker: Celery
) -> None:
    """A crawl lists its source's pending articles again (``tasks.crawl_source`` filters them with
    ``sweep.not_in_flight``): one whose fetch waits for its host's turn (a countdown message), is
    queued or runs on a live worker is left to that message; test_scale_out saw the second crawl
    send two such articles again and their pages fetched twice. One whose message died is sent."""
    ids = pipe.crawl("valley")
    waiting, running, dead = ids
    queue_name = str(celery_app.conf.task_routes["syndicate.process_article"]["queue"])
    broker.send_task("syndicate.process_article", args=[waiting], queue=queue_name, countdown=60)
    live(client, "w1@host", "boot-a")
    client.set(sweep.marker_key("process", running), sweep.held_marker("w1@host", "t2", "boot-a"))
    client.set(sweep.marker_key("process", dead), sweep.held_marker("w9@gone", "t3", "boot-z"))
    assert sweep.not_in_flight("process", [*ids, 999], client) == [dead, 999]
    # A "queued" marker whose message is gone (its run ended before the publisher wrote the marker)
    # covers nothing.
    client.set(sweep.marker_key("process", 999), sweep.queued_marker("finished-long-ago"))
    assert sweep.not_in_flight("process", [*ids, 999], client) == [dead, 999]
    assert sweep.not_in_flight("process", [], client) == []
    # Without readable markers every id is sent (the sweep's dedupe takes over from there).
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.2)
    assert sweep.not_in_flight("process", ids, unreachable) == ids


def test_a_late_queued_marker_does_not_overwrite_its_own_held_marker(client: redis.Redis) -> None:
    """``after_task_publish`` fires after the publish returned: the worker may have marked the message
    held by then. The late "queued" marker leaves it (a run then looked queued-but-taken to the
    sweep); a newer message's marker still replaces the held marker of an older run, and so does a
    Celery retry's, which keeps the task id (see test_finished_runs_drop_their_marker...)."""
    key = sweep.marker_key("process", 7)
    client.set(key, sweep.held_marker("w1@host", "t1", "boot-a"))
    sweep.mark_published(client, "syndicate.process_article", "t1", [7])
    assert client.get(key) == sweep.held_marker("w1@host", "t1", "boot-a").encode()
    sweep.mark_published(client, "syndicate.process_article", "t2", [7])  # its reschedule
    assert client.get(key) == b"q|t2"
    assert 0 < cast(int, client.ttl(key)) <= int(sweep._queued_ttl())
    # A task id that merely ends like another's is not the same task.
    client.set(key, sweep.held_marker("w1@host", "xt3", "boot-a"))
    sweep.mark_published(client, "syndicate.process_article", "t3", [7])
    assert client.get(key) == b"q|t3"


def test_an_interrupted_crawl_is_an_orphan_and_the_articles_it_holds_are_not(
    pipe: Pipe, client: redis.Redis, broker: Celery
) -> None:
    ids = pipe.crawl("valley")
    source_id = pipe.source_id("valley")
    age(pipe, Article, ids, last_seen_at=utcnow() - LONG_AGO)
    with pipe.rt.session() as session:
        session.execute(
            update(Source).where(Source.id == source_id).values(cursor={"documents": [], "ids": ids[:2]})
        )
    found = sweep.find_orphans(pipe.rt, client)
    assert found.crawls == [source_id]
    assert found.articles == ids[2:]  # the crawl enqueues the held ones when it completes
    enqueue(broker, "syndicate.crawl_source", source_id)
    assert sweep.find_orphans(pipe.rt, client).crawls == []


def test_ready_articles_an_endpoint_selects_without_share_rows_are_orphans(
    make_pipe: Callable[..., Pipe],
    site_config: dict[str, Any],
    client: redis.Redis,
    receiver: Receiver,
    broker: Celery,
) -> None:
    pipe = make(
        make_pipe,
        site_config,
        hook(receiver.url),
        # Selects nothing the fixture site has: its articles are not orphans for it.
        {**hook(receiver.url), "name": "sports", "categories": ["Sports"]},
        # Wants no back catalogue: a first crawl's articles are never shared there.
        {**hook(receiver.url), "name": "news", "back_catalogue": False},
    )
    ids = pipe.crawl_and_process("valley")
    assert sweep.find_orphans(pipe.rt, client).plans == []  # became ready just now
    age(pipe, Article, ids, changed_at=utcnow() - timedelta(minutes=2))
    # Not placed in their stories yet (the process step only): they wait for their assignment.
    assert sweep.find_orphans(pipe.rt, client).plans == []
    for article_id in ids:
        assign_article(pipe.rt, article_id)
    age(pipe, Article, ids, changed_at=utcnow() - timedelta(minutes=2))
    assert sweep.find_orphans(pipe.rt, client).plans == sorted(ids)

    enqueue(broker, "syndicate.plan_shares", ids[0])
    assert sweep.find_orphans(pipe.rt, client).plans == sorted(ids[1:])
    for article_id in ids[1:]:
        planned = plan_shares(pipe.rt, article_id)
        assert len(planned) == 1  # only "hook" selects it
    assert sweep.find_orphans(pipe.rt, client).plans == []

    # Outside the lookback: left to an operator.
    client.flushdb()
    age(pipe, Article, [ids[0]], changed_at=utcnow() - sweep.PLAN_LOOKBACK - timedelta(minutes=1))
    assert sweep.find_orphans(pipe.rt, client).plans == []


def test_shares_due_or_claimed_past_the_lease_are_orphans_unless_in_flight_or_held(
    make_pipe: Callable[..., Pipe],
    site_config: dict[str, Any],
    client: redis.Redis,
    receiver: Receiver,
    broker: Celery,
) -> None:
    pipe = make(make_pipe, site_config, hook(receiver.url), {**hook(receiver.url), "name": "paused"})
    ids = pipe.crawl_and_process("valley")
    shares = sorted(s for article_id in ids for s in plan_shares(pipe.rt, article_id))
    assert len(shares) == 6
    assert sweep.find_orphans(pipe.rt, client).shares == []  # planned just now

    by_endpoint = {s.id: s.endpoint for s in pipe.shares()}
    hook_shares = [s for s in shares if by_endpoint[s] == "hook"]
    paused = [s for s in shares if by_endpoint[s] == "paused"]
    age(pipe, Share, shares, created_at=utcnow() - LONG_AGO)
    set_endpoint_enabled(pipe.rt, "paused", False)
    assert sweep.find_orphans(pipe.rt, client).shares == hook_shares  # a disabled endpoint's are held

    waiting, queued, claimed = hook_shares
    now = utcnow()
    age(pipe, Share, [waiting], not_before=now + timedelta(minutes=1))  # its retry is not due yet
    enqueue(broker, "syndicate.deliver_share", queued)
    age(pipe, Share, [claimed], status="sending", claimed_at=now - timedelta(seconds=30))
    assert sweep.find_orphans(pipe.rt, client).shares == []  # a fresh claim may be a live send

    lease = pipe.rt.claim_lease
    age(pipe, Share, [claimed], claimed_at=now - timedelta(seconds=lease + 5))
    age(pipe, Share, [waiting], not_before=now - timedelta(seconds=1))
    assert sweep.find_orphans(pipe.rt, client).shares == [waiting, claimed]

    # Delivering what the sweep found posts each once; the recovered claim resends with its webhook-id.
    for share_id in (waiting, claimed):
        assert deliver_share(pipe.rt, share_id) == "sent"
    assert len(receiver.received) == 2 and len(set(receiver.ids())) == 2
    assert sweep.find_orphans(pipe.rt, client).shares == []
    assert set_endpoint_enabled(pipe.rt, "paused", True) == paused


def test_two_deliveries_of_one_orphan_post_it_once(
    make_pipe: Callable[..., Pipe], site_config: dict[str, Any], client: redis.Redis, receiver: Receiver
) -> None:
    """A re-enqueued orphan whose original message also comes back: both run at once, one post."""
    receiver.default = Answer(delay=0.5)
    pipe = make(make_pipe, site_config, hook(receiver.url))
    [article_id] = pipe.crawl_and_process("harbour")
    [share_id] = plan_shares(pipe.rt, article_id)
    results: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            results.append(deliver_share(pipe.rt, share_id))
        except BaseException as exc:  # Deferred ("another worker may be sending it") is a fine answer
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(receiver.received) == 1
    assert "sent" in results
    assert all(r in ("sent", "claimed") for r in results)
    assert all(type(e).__name__ == "Deferred" for e in errors), errors
    assert len(results) + len(errors) == 2


def test_feeds_whose_newest_change_is_newer_than_their_render_are_orphans(
    pipe: Pipe, client: redis.Redis, broker: Celery
) -> None:
    ids = pipe.crawl_and_process("valley")
    long_ago = utcnow() - LONG_AGO
    age(pipe, Article, ids, changed_at=long_ago)
    assert sweep.find_orphans(pipe.rt, client).renders == ["all"]  # never rendered
    render_current(pipe.rt, "all")
    assert sweep.find_orphans(pipe.rt, client).renders == ["all"]  # rendered, but neither served nor exported
    feedcache.publish_feed(pipe.rt, "all", client)
    assert sweep.find_orphans(pipe.rt, client).renders == []
    with pipe.rt.session() as session:
        session.execute(update(FeedRender).values(rendered_at=long_ago + timedelta(seconds=30)))
    assert sweep.find_orphans(pipe.rt, client).renders == []

    # A change after the render whose render was lost.
    age(pipe, Article, [ids[0]], changed_at=utcnow() - timedelta(seconds=sweep.MIN_AGE + 1))
    assert sweep.find_orphans(pipe.rt, client).renders == ["all"]
    enqueue(broker, "syndicate.render_feed", "all")
    assert sweep.find_orphans(pipe.rt, client).renders == []  # one is queued
    client.flushdb()
    assert sweep.find_orphans(pipe.rt, client).renders == ["all"]  # the flush took what was served
    feedcache.publish_feed(pipe.rt, "all", client)
    # A render that started after the change but changed no bytes still counts (recorded in Redis).
    client.set(sweep.RENDERED_PREFIX + "all", f"{time.time():.6f}")
    assert sweep.find_orphans(pipe.rt, client).renders == []


def test_feeds_whose_export_failed_are_orphans_until_it_works(pipe: Pipe, client: redis.Redis) -> None:
    """A render is done only when Redis serves it and the export directory holds it."""
    pipe.crawl_and_process("valley")
    render_current(pipe.rt, "all")
    exported = pipe.rt.settings.effective_feed_dir
    exported.parent.mkdir(parents=True, exist_ok=True)
    exported.write_text("a regular file where the directory should be\n", encoding="utf-8")
    with pytest.raises(FeedExportError, match=r"export to .* failed"):
        feedcache.publish_feed(pipe.rt, "all", client)
    assert feedcache.is_published(client, "all")  # the web serves the new render meanwhile
    assert sweep.find_orphans(pipe.rt, client).renders == ["all"]
    [(name, error)] = feedcache.export_errors(client, ["all"]).items()
    assert name == "all" and str(exported) in error["error"] and error["at"]
    exported.unlink()
    assert feedcache.publish_feed(pipe.rt, "all", client, force=False) is not None
    assert (exported / "all.json").exists()
    assert feedcache.export_errors(client, ["all"]) == {}
    assert sweep.find_orphans(pipe.rt, client).renders == []


def test_finished_runs_drop_their_marker_and_failures_cool_down(client: redis.Redis) -> None:
    task = "syndicate.process_article"
    key = sweep.marker_key("process", 7)
    live(client, "w1@host", sweep.BOOT)
    nodes = sweep.live_nodes(client)
    sweep.mark_received(client, task, "t1", [7], "w1@host")
    assert sweep.in_flight(client.get(key), nodes)
    assert client.ttl(key) > 0

    # The run re-enqueued itself (a retry, a reschedule): the new message's marker stays.
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    sweep.mark_published(client, task, "t1", [7], eta=later, retry=True)
    assert client.ttl(key) > sweep._queued_ttl() + 250
    assert not sweep.mark_finished(client, task, "t1", [7], "w1@host", failed=False)
    assert client.get(key) == b"q|t1"

    sweep.mark_received(client, task, "t1", [7], "w1@host")
    assert sweep.mark_finished(client, task, "t1", [7], "w1@host", failed=False)
    assert client.get(key) is None

    # Failures in a row: a cool-down that doubles (a database outage is retried soon, a crash not in a loop).
    sweep.mark_received(client, task, "t2", [7], "w1@host")
    assert sweep.mark_finished(client, task, "t2", [7], "w1@host", failed=True)
    assert (
        sweep.in_flight(client.get(key), {})
        and sweep.FAILURE_COOLDOWN - 5 <= client.ttl(key) <= sweep.FAILURE_COOLDOWN
    )
    sweep.mark_received(client, task, "t3", [7], "w1@host")
    assert sweep.mark_finished(client, task, "t3", [7], "w1@host", failed=True)
    assert sweep.FAILURE_COOLDOWN < client.ttl(key) <= 2 * sweep.FAILURE_COOLDOWN
    sweep.mark_received(client, task, "t4", [7], "w1@host")
    assert sweep.mark_finished(client, task, "t4", [7], "w1@host", failed=False)
    assert client.get(key) is None and client.get(key + ":failures") is None

    # Untracked tasks and tasks without an id argument leave no marker.
    sweep.mark_published(client, "syndicate.noop", "n1", [1])
    sweep.mark_published(client, task, "n2", [])
    assert client.keys(sweep.PREFIX + "*") == [sweep.NODES_KEY.encode()]


def test_concurrent_sweeps_enqueue_once(pipe: Pipe, client: redis.Redis, broker: Celery) -> None:
    ids = pipe.crawl("valley")
    age(pipe, Article, ids, last_seen_at=utcnow() - LONG_AGO)
    client.set(sweep.LOCK_KEY, "another sweep", px=5000)
    assert sweep.sweep(pipe.rt, client) is None
    client.delete(sweep.LOCK_KEY)
    found = sweep.sweep(pipe.rt, client)
    assert found is not None and found.articles == ids
    assert client.get(sweep.LOCK_KEY) is None  # released
    # What a sweep enqueues is marked as queued by the publish handler: the next sweep finds nothing.
    for article_id in found.articles:
        enqueue(broker, "syndicate.process_article", article_id)
    again = sweep.sweep(pipe.rt, client)
    assert again is not None and not again


def test_stale_work_keeps_its_database_only_answer(pipe: Pipe) -> None:
    ids = pipe.crawl("valley")
    assert stale_work(pipe.rt, timedelta(minutes=1)) == ([], [])
    age(pipe, Article, ids, last_seen_at=utcnow() - LONG_AGO)
    assert stale_work(pipe.rt, timedelta(minutes=1)) == (ids, [])


def test_the_beat_entry_runs_the_sweep_well_within_a_minute() -> None:
    entry = sweep.beat_entry()
    assert entry["task"] == "syndicate.sweep"
    assert sweep.INTERVAL + sweep.NODE_STALE_AFTER + sweep.MIN_AGE <= 60
    assert entry["schedule"] == sweep.INTERVAL and entry["options"]["expires"] <= entry["schedule"]


def test_a_retrying_run_keeps_the_marker_its_retry_message_set(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Celery retry is a new message with the same task id; its worker can mark it held (same node,
    same id) before the first run's postrun fires. That postrun must not drop the retry's marker, or the
    sweep starts a second chain beside the retry (seen in the status-page browser test)."""
    # the signal handler's Redis: this test's real one
    monkeypatch.setattr(redisclient, "_bookkeeping", client)
    task = "syndicate.process_article"
    key = sweep.marker_key("process", 8)
    live(client, "w1@host", sweep.BOOT)

    class Sender:
        name = task

        class request:
            hostname = "w1@host"

    sweep.mark_received(client, task, "t9", [8], "w1@host")  # the retry message, already received
    sweep.on_task_postrun(sender=Sender(), task_id="t9", args=[8], state="RETRY")
    assert sweep.in_flight(client.get(key), sweep.live_nodes(client))
    sweep.on_task_postrun(sender=Sender(), task_id="t9", args=[8], state="SUCCESS")  # the retry ends
    assert client.get(key) is None


def test_work_that_finishes_while_the_sweep_reads_the_markers_is_no_orphan(
    make_pipe: Callable[..., Pipe],
    site_config: dict[str, Any],
    client: redis.Redis,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep reads the database, then the markers; a task that commits and drops its marker in
    between must not be re-enqueued (a 3,000-article run re-ran 35 articles and plans this way)."""
    pipe = make(make_pipe, site_config, hook(receiver.url))
    ids = pipe.crawl("valley")
    age(pipe, Article, ids, last_seen_at=utcnow() - LONG_AGO)
    for n, article_id in enumerate(ids):
        sweep.mark_published(client, "syndicate.process_article", f"t{n}", [article_id])
    real_live_nodes = sweep.live_nodes

    def workers_finish_meanwhile(conn: redis.Redis) -> dict[str, str]:
        # What the workers do at this moment: commit the work, then drop the markers (task_postrun).
        pipe.process(ids)
        conn.delete(*[sweep.marker_key("process", article_id) for article_id in ids])
        return real_live_nodes(conn)

    monkeypatch.setattr(sweep, "live_nodes", workers_finish_meanwhile)
    found = sweep.find_orphans(pipe.rt, client)
    assert found.articles == [] and found.why == {}, found

    # The same for lost planning: ready articles without shares whose planning runs meanwhile.
    age(pipe, Article, ids, changed_at=utcnow() - timedelta(minutes=2))
    for n, article_id in enumerate(ids):
        sweep.mark_published(client, "syndicate.plan_shares", f"p{n}", [article_id])

    def planning_finishes_meanwhile(conn: redis.Redis) -> dict[str, str]:
        for article_id in ids:
            plan_shares(pipe.rt, article_id)
        conn.delete(*[sweep.marker_key("plan", article_id) for article_id in ids])
        return real_live_nodes(conn)

    monkeypatch.setattr(sweep, "live_nodes", planning_finishes_meanwhile)
    found = sweep.find_orphans(pipe.rt, client)
    assert found.plans == [] and found.articles == [], found

    # Work that really is orphaned still is (nothing finishes meanwhile, no marker).
    monkeypatch.setattr(sweep, "live_nodes", real_live_nodes)
    with pipe.rt.session() as session:
        session.execute(update(Share).values(status="pending", created_at=utcnow() - LONG_AGO))
    orphans = sweep.find_orphans(pipe.rt, client)
    assert len(orphans.shares) == len(ids) and all(v == "no marker" for v in orphans.why.values()), orphans
