"""The share and endpoint commands through ``worker.cli.main``: a temp config, a SQLite database, a real
webhook receiver and a real Redis as the broker (``share send``, ``share retry`` and ``endpoint enable``
enqueue ``deliver_share`` there; the tests read the queued messages back)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select, update

from tests.pipeline.receivers import Answer, Receiver
from tests.support.services import RedisServer
from worker.cli import main
from worker.crawl import sync_sources
from worker.ingest import PushedArticle, ingest_article
from worker.process import process_article
from worker.runtime import get_runtime, set_runtime
from worker.store.db import get_engine
from worker.store.models import Article, Share, utcnow
from worker.store.models import Endpoint as EndpointRow

REDIS_DB = 11
SECRET = "whsec_" + base64.b64encode(b"cli-share-test-secret-32-bytes!!").decode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running webhook receiver."""
    rec = Receiver()
    rec.thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def broker(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """Point the Celery app at a fresh database of the real Redis (see tests/web/conftest.py::broker)."""
    from worker.app import app as celery_app

    url = f"redis://127.0.0.1:{redis_server.port}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    monkeypatch.setitem(celery_app.conf, "broker_url", url)
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)
    yield client
    client.close()


@pytest.fixture
def cli(
    tmp_path: Path, receiver: Receiver, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A config with a webhook endpoint (the receiver) and a file endpoint, on a SQLite database."""
    database_url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = tmp_path / "syndicate.yaml"
    config.write_text(
        f"""
sources:
  - {{name: valley, kind: listing, url: "http://127.0.0.1:9/news/"}}
feeds:
  - {{name: all, title: All}}
endpoints:
  - {{name: hook, kind: webhook, url: "{receiver.url}", secret: "${{CLI_HOOK_SECRET}}", story_window: 0}}
  - {{name: log, kind: file, path: shares.jsonl, story_window: 0}}
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("SYNDICATE_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SYNDICATE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REDIS_URL", broker_url(broker))
    monkeypatch.setenv("CLI_HOOK_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    assert main(["migrate"]) == 0
    yield tmp_path
    set_runtime(None)
    get_engine(database_url).dispose()


def broker_url(client: redis.Redis) -> str:
    """The URL of ``client``'s database."""
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


def old_article(title: str = "Solar cluster opens a shared test lab") -> int:
    """A ready article of the source's first crawl (back catalogue), in the CLI's database."""
    rt = get_runtime()
    with rt.session() as session:
        ids = sync_sources(session, rt.config)
        row = Article(
            source_id=ids["valley"],
            url="https://valley.example/news/solar",
            canonical_url="https://valley.example/news/solar",
            status="ready",
            title=title,
            summary="A lab for grid-forming inverters.",
            published=utcnow(),
            backfill=True,
        )
        session.add(row)
        session.flush()
        return row.id


def shares() -> list[dict[str, Any]]:
    """Every share row as a dict."""
    with get_runtime().session() as session:
        return [
            {
                "id": s.id,
                "endpoint": s.endpoint,
                "status": s.status,
                "remote_url": s.remote_url,
                "error": s.error,
            }
            for s in session.scalars(select(Share).order_by(Share.id))
        ]


def queued(client: redis.Redis) -> list[tuple[str, list[Any]]]:
    """``(task, args)`` of each message waiting in the share queue."""
    out = []
    for raw in client.lrange("share", 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], body[0]))
    return out


def test_share_preview_prints_text_and_payload_and_sends_nothing(
    cli: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["status"])  # build the runtime
    article_id = old_article()
    capsys.readouterr()
    assert main(["share", "preview", str(article_id)]) == 0
    out = capsys.readouterr().out
    note = "back catalogue: found by its source's first crawl: not shared unless sent on purpose"
    assert f"== hook (webhook)  [{note}]" in out
    assert "Solar cluster opens a shared test lab" in out and '"type": "article.published"' in out
    assert SECRET not in out

    assert (
        main(["share", "preview", "https://valley.example/news/solar", "--endpoint", "hook", "--json"]) == 0
    )
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["endpoint"] == "hook" and entry["payload"]["data"]["article_id"] == article_id
    assert receiver.received == [] and shares() == []

    assert main(["share", "preview", "999999"]) == 1
    assert "no article '999999'" in capsys.readouterr().err


def test_share_send_inline_shares_an_old_article_on_purpose(
    cli: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["status"])
    article_id = old_article()
    assert main(["share", "send", str(article_id), "--endpoint", "hook", "--inline"]) == 0
    assert "sent" in capsys.readouterr().out
    assert [(s["endpoint"], s["status"]) for s in shares()] == [("hook", "sent")]
    assert len(receiver.received) == 1
    # Sent already: a second send does not post again.
    assert main(["share", "send", str(article_id), "--endpoint", "hook", "--inline"]) == 0
    assert "already shared" in capsys.readouterr().out
    assert len(receiver.received) == 1

    assert main(["share", "send", str(article_id), "--endpoint", "nope"]) == 2
    assert "no endpoint named 'nope'" in capsys.readouterr().err


def test_share_send_enqueues_for_the_workers(
    cli: Path, receiver: Receiver, broker: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["status"])
    article_id = old_article()
    assert main(["share", "send", str(article_id), "--endpoint", "log"]) == 0
    [share] = shares()
    assert share["endpoint"] == "log" and share["status"] == "pending"
    assert queued(broker) == [("syndicate.deliver_share", [share["id"]])]
    assert f"share {share['id']} of article {article_id} to log enqueued" in capsys.readouterr().out


def test_share_retry_and_mark_sent(
    cli: Path, broker: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["status"])
    article_id = old_article()
    assert main(["share", "send", str(article_id), "--endpoint", "hook"]) == 0
    assert main(["share", "send", str(article_id), "--endpoint", "log"]) == 0
    hook_share, log_share = (s["id"] for s in shares())
    with get_runtime().session() as session:
        session.execute(update(Share).values(status="uncertain", error="may have been posted"))
    broker.delete("share")
    capsys.readouterr()

    assert main(["share", "retry", str(hook_share)]) == 0
    assert f"share {hook_share} is pending again" in capsys.readouterr().out
    assert queued(broker) == [("syndicate.deliver_share", [hook_share])]
    assert main(["share", "retry", str(hook_share)]) == 1  # pending is not failed or uncertain
    assert "not failed or uncertain" in capsys.readouterr().err

    assert main(["share", "mark-sent", str(log_share), "--url", "https://network.example/p/1"]) == 0
    assert [(s["status"], s["remote_url"]) for s in shares() if s["id"] == log_share] == [
        ("sent", "https://network.example/p/1")
    ]
    assert main(["share", "mark-sent", str(log_share)]) == 1
    assert "cannot be marked sent" in capsys.readouterr().err


def test_endpoint_disable_and_enable(
    cli: Path, receiver: Receiver, broker: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["status"])
    article_id = old_article()
    assert main(["endpoint", "disable", "hook"]) == 0
    assert "its shares wait" in capsys.readouterr().out
    assert main(["share", "send", str(article_id), "--endpoint", "hook", "--inline"]) == 0
    assert "held" in capsys.readouterr().out
    assert receiver.received == [] and [s["status"] for s in shares()] == ["pending"]
    assert main(["status", "--json"]) == 0
    [hook] = [e for e in json.loads(capsys.readouterr().out)["endpoints"] if e["name"] == "hook"]
    assert hook["enabled"] is False and hook["disabled_reason"] == "disabled by an operator"
    assert main(["status"]) == 0
    assert "DISABLED: disabled by an operator" in capsys.readouterr().out

    broker.delete("share")
    assert main(["endpoint", "enable", "hook"]) == 0
    assert "1 pending shares enqueued" in capsys.readouterr().out
    assert queued(broker) == [("syndicate.deliver_share", [shares()[0]["id"]])]
    with get_runtime().session() as session:
        row = session.scalar(select(EndpointRow).where(EndpointRow.name == "hook"))
        assert row is not None and row.disabled_at is None

    assert main(["endpoint", "enable", "nope"]) == 2
    assert "no endpoint named 'nope'" in capsys.readouterr().err


def test_an_endpoint_disabled_by_its_error_shows_why(
    cli: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.script = [Answer(410, {"error": "webhook deleted"})]
    main(["status"])
    article_id = old_article()
    assert main(["share", "send", str(article_id), "--endpoint", "hook", "--inline"]) == 0
    assert "failed" in capsys.readouterr().out
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "DISABLED:" in out and "HTTP 410" in out and SECRET not in out


# Sentences of 60-130 characters: a summary cut at a fixed 300 characters ends inside one of them.
LONG_STORY = [
    "The valley's new solar cluster opened its shared test lab on Monday, after two years of building.",
    "Twelve member companies will use the lab to test grid-forming inverters before they reach the field.",
    "The lab sits beside the substation, so every test runs against the real grid rather than a model.",
    "Its first customers are two start-ups from Cluj and a utility from the coast.",
    "The operators expect to book the lab for most of next year, and plan a second hall for batteries.",
    "Residents can visit the site on open days, the first of which is in September.",
    "The regional council paid a third of the cost; the members paid the rest.",
]


@pytest.fixture
def masto_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A config with a Mastodon endpoint (never contacted: a preview sends nothing), on SQLite."""
    database_url = f"sqlite:///{tmp_path / 'cli.db'}"
    config = tmp_path / "syndicate.yaml"
    config.write_text(
        """
sources:
  - {name: valley, kind: listing, url: "http://127.0.0.1:9/news/"}
feeds:
  - {name: all, title: All}
endpoints:
  - {name: masto, kind: mastodon, instance: "https://social.example", access_token: "${CLI_MASTO_TOKEN}"}
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("SYNDICATE_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SYNDICATE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("CLI_MASTO_TOKEN", "masto-token-for-a-preview")
    monkeypatch.chdir(tmp_path)
    assert main(["migrate"]) == 0
    yield tmp_path
    set_runtime(None)
    get_engine(database_url).dispose()


def test_a_mastodon_preview_fills_the_500_characters_and_ends_with_a_sentence(
    masto_cli: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16: the toot used 427 of 500 characters, its summary cut mid-sentence at 300."""
    rt = get_runtime()
    body = "".join(f"<p>{sentence}</p>" for sentence in LONG_STORY)
    article_id, _ = ingest_article(
        rt,
        PushedArticle(
            url="https://valley.example/news/solar-lab",
            html=f"<html><head><title>Solar cluster opens a shared test lab</title></head>"
            f"<body><article><h1>Solar cluster opens a shared test lab</h1>{body}</article></body></html>",
        ),
    )
    assert process_article(rt, article_id).status == "ready"
    with rt.session() as session:
        stored = session.get(Article, article_id)
        assert stored is not None and stored.summary is not None
        assert len(stored.summary) <= 300 and stored.summary.endswith("…")  # the feeds' summary is unchanged
    capsys.readouterr()

    assert main(["share", "preview", str(article_id), "--endpoint", "masto", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["limit"] == 500
    assert 450 <= entry["length"] <= 500, entry["text"]
    title, summary, url = entry["text"].split("\n\n")
    assert title == "Solar cluster opens a shared test lab" and url == "https://valley.example/news/solar-lab"
    assert len(summary) > 300 and summary.endswith(".")
    assert " ".join(LONG_STORY).startswith(summary)
