"""The share stages: one outbox row per (article, endpoint), chosen by the endpoint's feed and
category filters, delivered once to a JSON-lines file and to a real webhook receiver that is busy
first (503, then 200).

The articles here come from each source's first crawl, which is back catalogue; the endpoints set
``back_catalogue: true`` because these tests are about routing and delivery (the back catalogue
rules are tested in test_outbox.py)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
import standardwebhooks
from sqlalchemy import update

from tests.support.httpserver import HTTPTestServer
from worker.errors import Deferred
from worker.outbox.delivery import deliver_share
from worker.outbox.planning import plan_shares
from worker.outbox.retry import RETRY_SCHEDULE
from worker.store.models import Share, utcnow

SECRET = "whsec_" + base64.b64encode(b"pipeline-share-test-secret-32by!").decode()
ENV = {"HOOK_SECRET": SECRET}


def _config(site_config: dict, hook_url: str) -> dict:
    site_config["feeds"] = [
        {"name": "all", "title": "All"},
        {"name": "it", "title": "IT Systems", "categories": ["it systems"]},
    ]
    site_config["endpoints"] = [
        {"name": "archive", "kind": "file", "path": "shares/archive.jsonl", "story_window": 0},
        {
            "name": "hook",
            "kind": "webhook",
            "url": hook_url,
            "secret": "${HOOK_SECRET}",
            "feeds": ["it"],
            "story_window": 0,
        },
        {
            "name": "farming",
            "kind": "file",
            "path": "shares/farming.jsonl",
            "categories": ["AGRICULTURE"],
            "story_window": 0,
        },
        {
            "name": "it-or-agri",
            "kind": "file",
            "path": "shares/mixed.jsonl",
            "feeds": ["it"],
            "categories": ["Agriculture"],
            "story_window": 0,
        },
        {"name": "paused", "kind": "file", "path": "shares/paused.jsonl", "enabled": False},
    ]
    for endpoint in site_config["endpoints"]:
        endpoint["back_catalogue"] = True
    return site_config


@pytest.fixture
def share_pipe(site_config, make_pipe, webhook_receiver):
    """Both sources processed (4 ready articles), with five endpoints configured."""
    pipe = make_pipe(_config(site_config, webhook_receiver.url), ENV)
    pipe.crawl_and_process("valley", "harbour")
    assert sum(a.status == "ready" for a in pipe.articles().values()) == 4
    return pipe


def _titles_by_endpoint(pipe) -> dict[str, set[str]]:
    titles = {a.id: a.title for a in pipe.articles().values()}
    out: dict[str, set[str]] = {}
    for share in pipe.shares():
        out.setdefault(share.endpoint, set()).add(titles[share.article_id])
    return out


def test_plan_creates_one_share_per_article_and_endpoint(share_pipe) -> None:
    ids = [a.id for a in share_pipe.articles().values()]
    first = [plan_shares(share_pipe.rt, i) for i in ids]
    rows = share_pipe.shares()
    assert sorted(s for planned in first for s in planned) == [s.id for s in rows]
    assert {s.status for s in rows} == {"pending"}

    second = [plan_shares(share_pipe.rt, i) for i in ids]
    assert second == first
    assert [s.id for s in share_pipe.shares()] == [s.id for s in rows]
    pairs = [(s.article_id, s.endpoint) for s in share_pipe.shares()]
    assert len(pairs) == len(set(pairs))


def test_endpoint_feed_and_category_filters_choose_shares(share_pipe) -> None:
    for article in share_pipe.articles().values():
        plan_shares(share_pipe.rt, article.id)
    solar, farm = "Solar cluster opens a shared test lab", "Farm cooperative launches a seed exchange"
    robotics, harbour = "Robotics camp for girls returns", "Harbour software upgrade finished"

    assert _titles_by_endpoint(share_pipe) == {
        "archive": {solar, farm, robotics, harbour},
        "hook": {solar, harbour},  # the "it" feed: category IT Systems, any case
        "farming": {farm},  # category filter, case-insensitive
        # both filters apply: in the "it" feed AND category Agriculture: nothing is both
    }


def test_plan_skips_articles_that_are_not_ready(site_config, make_pipe, site: HTTPTestServer) -> None:
    site_config["endpoints"] = [{"name": "archive", "kind": "file", "path": "a.jsonl", "story_window": 0}]
    site.status("/news/farm-cooperative.html", 404)
    pipe = make_pipe(site_config)
    ids = pipe.crawl("valley")
    farm = pipe.article(site.url("/news/farm-cooperative.html"))
    assert plan_shares(pipe.rt, farm.id) == []  # still pending
    pipe.process(ids)
    assert pipe.article(farm.id).status == "failed"
    assert plan_shares(pipe.rt, farm.id) == []
    assert plan_shares(pipe.rt, 999_999) == []
    assert pipe.shares() == []


def test_file_endpoint_writes_exactly_one_line(share_pipe, tmp_path: Path) -> None:
    article = next(a for a in share_pipe.articles().values() if a.title.startswith("Farm"))
    planned = plan_shares(share_pipe.rt, article.id)
    archive = next(s for s in share_pipe.shares() if s.endpoint == "archive")
    assert archive.id in planned
    path = tmp_path / "shares" / "archive.jsonl"

    assert deliver_share(share_pipe.rt, archive.id) == "sent"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["type"] == "article.published"
    assert record["data"]["title"] == "Farm cooperative launches a seed exchange"
    sent = next(s for s in share_pipe.shares() if s.id == archive.id)
    assert sent.status == "sent" and sent.remote_id == record["id"] and sent.sent_at is not None
    assert sent.attempts == 1

    # Delivering again is a no-op: no second line, no second attempt.
    assert deliver_share(share_pipe.rt, archive.id) == "sent"
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
    assert next(s for s in share_pipe.shares() if s.id == archive.id).attempts == 1

    # Even a redelivery after a crash between the append and the commit writes no second line.
    with share_pipe.rt.session() as session:
        session.execute(update(Share).where(Share.id == archive.id).values(status="pending"))
    assert deliver_share(share_pipe.rt, archive.id) == "sent"
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1
    # Planning again after it was sent does not hand it out again.
    assert archive.id not in plan_shares(share_pipe.rt, article.id)


def test_webhook_busy_then_ok_retries_and_then_sends(share_pipe, webhook_receiver) -> None:
    webhook_receiver.statuses = [503, 200]
    article = next(a for a in share_pipe.articles().values() if a.title.startswith("Solar"))
    plan_shares(share_pipe.rt, article.id)
    hook = next(s for s in share_pipe.shares() if s.endpoint == "hook" and s.article_id == article.id)

    before = utcnow()
    with pytest.raises(Deferred) as caught:
        deliver_share(share_pipe.rt, hook.id)
    # Back to pending on the retry schedule kept in the database, not a Celery retry.
    assert caught.value.seconds == RETRY_SCHEDULE[0] and "HTTP 503" in caught.value.reason
    busy = next(s for s in share_pipe.shares() if s.id == hook.id)
    assert busy.status == "pending" and busy.attempts == 1
    assert busy.error is not None and "HTTP 503" in busy.error and busy.remote_id is None
    assert busy.not_before is not None
    assert busy.not_before - before >= timedelta(seconds=RETRY_SCHEDULE[0])

    # Not yet: the share waits for its not_before without a request.
    with pytest.raises(Deferred, match="scheduled time"):
        deliver_share(share_pipe.rt, hook.id)
    assert len(webhook_receiver.received) == 1

    # The retry time comes.
    with share_pipe.rt.session() as session:
        session.execute(update(Share).where(Share.id == hook.id).values(not_before=utcnow()))
    assert deliver_share(share_pipe.rt, hook.id) == "sent"
    sent = next(s for s in share_pipe.shares() if s.id == hook.id)
    assert sent.status == "sent" and sent.remote_id == "remote-2" and sent.error is None
    assert sent.attempts == 2

    # Both attempts carried the same webhook-id (the idempotency key) and a valid signature.
    assert len(webhook_receiver.received) == 2
    ids = {headers["webhook-id"] for headers, _ in webhook_receiver.received}
    assert len(ids) == 1
    headers, body = webhook_receiver.received[-1]
    payload = standardwebhooks.Webhook(SECRET).verify(body, headers)
    assert payload["data"]["title"] == "Solar cluster opens a shared test lab"

    assert deliver_share(share_pipe.rt, hook.id) == "sent"
    assert len(webhook_receiver.received) == 2


def test_webhook_rejection_fails_the_share_with_the_reason(share_pipe, webhook_receiver) -> None:
    webhook_receiver.statuses = [400]
    article = next(a for a in share_pipe.articles().values() if a.title.startswith("Harbour"))
    plan_shares(share_pipe.rt, article.id)
    hook = next(s for s in share_pipe.shares() if s.endpoint == "hook" and s.article_id == article.id)

    assert deliver_share(share_pipe.rt, hook.id) == "failed"
    failed = next(s for s in share_pipe.shares() if s.id == hook.id)
    assert failed.status == "failed" and "HTTP 400" in failed.error
    assert deliver_share(share_pipe.rt, hook.id) == "failed"
    assert len(webhook_receiver.received) == 1


def test_share_for_an_endpoint_no_longer_configured_fails_clearly(share_pipe, make_pipe, site_config) -> None:
    article = next(a for a in share_pipe.articles().values() if a.title.startswith("Robotics"))
    plan_shares(share_pipe.rt, article.id)
    archive = next(s for s in share_pipe.shares() if s.endpoint == "archive")
    site_config["endpoints"] = []
    reconfigured = make_pipe(site_config)
    assert deliver_share(reconfigured.rt, archive.id) == "failed"
    row = next(s for s in reconfigured.shares() if s.id == archive.id)
    assert "no longer configured" in row.error
    with pytest.raises(LookupError):
        deliver_share(reconfigured.rt, 999_999)


def test_plan_loses_the_race_to_another_worker_gracefully(share_pipe, database_url: str) -> None:
    """Another worker commits the same (article, endpoint) share between our read and our insert."""
    from sqlalchemy import event, insert

    from worker.store.db import get_engine
    from worker.store.models import utcnow

    article = next(a for a in share_pipe.articles().values() if a.title.startswith("Farm"))
    raced: list[str] = []

    engine = get_engine(database_url)

    # Just before our INSERT of the archive share reaches the database (plan_shares inserts with
    # ON CONFLICT DO NOTHING, no ORM flush), another worker's transaction commits the same row.
    def other_worker_commits_first(_conn, _cursor, statement, parameters, _context, _many) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        if statement.startswith("INSERT INTO shares") and "archive" in values and not raced:
            raced.append("archive")
            with engine.begin() as conn:  # a separate connection and transaction
                conn.execute(
                    insert(Share).values(
                        article_id=article.id,
                        endpoint="archive",
                        status="sent",
                        remote_id="other-worker",
                        attempts=1,
                        created_at=utcnow(),
                    )
                )

    event.listen(engine, "before_cursor_execute", other_worker_commits_first)
    try:
        planned = plan_shares(share_pipe.rt, article.id)
    finally:
        event.remove(engine, "before_cursor_execute", other_worker_commits_first)

    assert raced == ["archive"]
    rows = [s for s in share_pipe.shares() if s.article_id == article.id]
    assert sorted(s.endpoint for s in rows) == ["archive", "farming"]
    archive = next(s for s in rows if s.endpoint == "archive")
    assert archive.remote_id == "other-worker" and archive.status == "sent"
    farming = next(s for s in rows if s.endpoint == "farming")
    assert planned == [farming.id]  # the other worker's share is not handed out again


def test_file_endpoint_that_cannot_be_written_fails_with_the_reason(
    site_config, make_pipe, tmp_path: Path
) -> None:
    (tmp_path / "a-directory.jsonl").mkdir()
    site_config["endpoints"] = [
        {
            "name": "broken",
            "kind": "file",
            "path": "a-directory.jsonl",
            "back_catalogue": True,
            "story_window": 0,
        }
    ]
    pipe = make_pipe(site_config)
    [article_id] = pipe.crawl("harbour")
    pipe.process([article_id])
    [share_id] = plan_shares(pipe.rt, article_id)
    assert deliver_share(pipe.rt, share_id) == "failed"
    [row] = pipe.shares()
    assert row.status == "failed" and "cannot append" in row.error and "a-directory.jsonl" in row.error
