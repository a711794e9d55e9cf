"""POST /api/articles: bearer auth, validation errors that name the field, bounded request bodies,
and a valid push stored as a pending article whose task message really sits in Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.runtime import Runtime
from worker.store.models import Article
from worker.web.app import create_web_app

TOKEN = "web-test-token"  # what tests/web/conftest.py configures as ${WEB_API_TOKEN}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VALID = {
    "url": "https://partner.example/story",
    "title": "A story",
    "content_html": "<p>The two clusters signed an agreement on mentorship and shared market channels.</p>",
    "published": "2019-03-06T10:00:00Z",
    "category": "IT Systems",
}


def _count(runtime: Runtime) -> int:
    with runtime.session() as session:
        return int(session.scalar(select(func.count()).select_from(Article)) or 0)


def test_valid_push_is_stored_pending_and_queued(
    client: TestClient, runtime: Runtime, broker, queued
) -> None:
    resp = client.post("/api/articles", json=VALID, headers=AUTH)

    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "queued" and body["created"] is True and isinstance(body["id"], int)
    with runtime.session() as session:
        article = session.get(Article, body["id"])
        assert article is not None
        assert article.status == "pending" and article.url == VALID["url"]
        assert (
            article.raw_html
            and "A story" in article.raw_html
            and "shared market channels" in article.raw_html
        )
        assert article.source.name == "api"
    messages = queued(broker, "fetch")
    assert broker.llen("fetch") == 1
    assert messages == [{"task": "syndicate.process_article", "args": [body["id"]], "kwargs": {}}]


def _article(session: Session, article_id: int) -> Article:
    article = session.get(Article, article_id)
    assert article is not None, article_id
    return article


def test_repush_updates_the_same_article(client: TestClient, runtime: Runtime, broker, queued) -> None:
    first = client.post("/api/articles", json=VALID, headers=AUTH).json()
    second = client.post("/api/articles", json={**VALID, "title": "A corrected story"}, headers=AUTH)
    assert second.status_code == 202 and second.json()["status"] == "queued"
    assert second.json()["id"] == first["id"] and second.json()["created"] is False
    assert _count(runtime) == 1
    with runtime.session() as session:
        assert "A corrected story" in (_article(session, first["id"]).raw_html or "")
    assert [m["args"] for m in queued(broker, "fetch")] == [[first["id"]], [first["id"]]]


def test_push_with_html_or_url_only(client: TestClient, runtime: Runtime, broker) -> None:
    page = "<html><head><title>Given page</title></head><body><p>Body text of the page.</p></body></html>"
    with_html = client.post(
        "/api/articles", json={"url": "https://partner.example/a", "html": page}, headers=AUTH
    )
    url_only = client.post("/api/articles", json={"url": "https://partner.example/b"}, headers=AUTH)
    assert with_html.status_code == url_only.status_code == 202
    assert with_html.json()["status"] == url_only.json()["status"] == "queued"
    with runtime.session() as session:
        assert _article(session, with_html.json()["id"]).raw_html == page
        assert _article(session, url_only.json()["id"]).raw_html is None
    assert broker.llen("fetch") == 2


def test_push_to_a_configured_source(client: TestClient, runtime: Runtime, broker) -> None:
    resp = client.post("/api/articles", json={**VALID, "source": "valley"}, headers=AUTH)
    assert resp.status_code == 202
    with runtime.session() as session:
        assert _article(session, resp.json()["id"]).source.name == "valley"


def test_queue_down_still_stores_the_article(make_runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.app import app as celery_app

    closed = "redis://127.0.0.1:1/0"
    monkeypatch.setitem(celery_app.conf, "broker_url", closed)
    monkeypatch.setitem(celery_app.conf, "broker_connection_max_retries", 0)
    monkeypatch.setitem(celery_app.conf, "broker_connection_timeout", 1)
    monkeypatch.setattr(celery_app, "_pool", None)
    monkeypatch.setattr(celery_app.amqp, "_producer_pool", None)
    runtime = make_runtime(redis_url=closed)
    with TestClient(create_web_app(runtime), raise_server_exceptions=False) as client:
        resp = client.post("/api/articles", json=VALID, headers=AUTH)
    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "stored, queue unavailable"
    assert _count(runtime) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "no-scheme", "basic", "empty"],
)
def test_missing_or_wrong_token_is_401(client: TestClient, runtime: Runtime, broker, headers: dict) -> None:
    resp = client.post("/api/articles", json=VALID, headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert _count(runtime) == 0 and broker.llen("fetch") == 0


def test_token_is_checked_before_the_body(client: TestClient, runtime: Runtime, broker) -> None:
    resp = client.post("/api/articles", json={"url": "not a url", "bogus": 1})
    assert resp.status_code == 401  # a stranger learns nothing about the schema
    assert _count(runtime) == 0


def test_bearer_scheme_is_case_insensitive(client: TestClient, broker) -> None:
    assert (
        client.post("/api/articles", json=VALID, headers={"Authorization": f"bearer {TOKEN}"}).status_code
        == 202
    )


def test_ingest_without_configured_token_is_503(make_runtime, config_factory, redis_url: str) -> None:
    config = config_factory(api={})
    runtime = make_runtime(config, redis_url=redis_url)
    with TestClient(create_web_app(runtime)) as client:
        resp = client.post("/api/articles", json=VALID, headers=AUTH)
    assert resp.status_code == 503
    assert "api.token" in resp.json()["detail"]
    assert _count(runtime) == 0


def _error_fields(resp) -> list[str]:
    """The field names the 422 answer points at."""
    detail = resp.json()["detail"]
    if isinstance(detail, str):
        return [detail.split(":", 1)[0]]
    return [str(err["loc"][-1]) for err in detail]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({k: v for k, v in VALID.items() if k != "url"}, "url"),
        ({**VALID, "url": "ftp://partner.example/story"}, "url"),
        ({**VALID, "url": "javascript:alert(1)"}, "url"),
        ({**VALID, "url": "not a url"}, "url"),
        ({**VALID, "published": "2019-03-06T10:00:00"}, "published"),
        ({**VALID, "published": "last tuesday"}, "published"),
        ({**VALID, "colour": "blue"}, "colour"),
        ({**VALID, "source": "nope"}, "source"),
        ({**VALID, "tags": "not-a-list"}, "tags"),
        ({**VALID, "title": "x" * 1001}, "title"),
        ({**VALID, "image": "file:///etc/passwd"}, "image"),
        ({**VALID, "url": "https://partner.example/" + "a" * 2100}, "url"),
    ],
    ids=[
        "missing-url",
        "ftp-url",
        "js-url",
        "not-a-url",
        "naive-date",
        "bad-date",
        "unknown-key",
        "unknown-source",
        "tags-not-list",
        "title-too-long",
        "file-image",
        "url-too-long",
    ],
)
def test_invalid_push_is_422_naming_the_field(
    client: TestClient, runtime: Runtime, broker, payload: dict, field: str
) -> None:
    resp = client.post("/api/articles", json=payload, headers=AUTH)
    assert resp.status_code == 422, resp.text
    assert field in _error_fields(resp), resp.json()
    assert _count(runtime) == 0 and broker.llen("fetch") == 0


def test_naive_date_message_explains_the_fix(client: TestClient, broker) -> None:
    resp = client.post("/api/articles", json={**VALID, "published": "2019-03-06T10:00:00"}, headers=AUTH)
    assert "timezone" in json.dumps(resp.json())


@pytest.mark.parametrize("body", [b"{not json", b"", b"[]", b'"just a string"', b"null"])
def test_body_that_is_not_a_json_object_is_422(
    client: TestClient, runtime: Runtime, broker, body: bytes
) -> None:
    resp = client.post("/api/articles", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]
    assert _count(runtime) == 0


def test_html_over_the_field_limit_is_422(client: TestClient, runtime: Runtime, broker) -> None:
    resp = client.post("/api/articles", json={"url": VALID["url"], "html": "a" * 5_000_001}, headers=AUTH)
    assert resp.status_code == 422, resp.status_code
    assert "html" in _error_fields(resp)
    assert _count(runtime) == 0


def test_oversized_body_is_413_before_it_is_parsed(client: TestClient, runtime: Runtime, broker) -> None:
    body = json.dumps(
        {
            "url": VALID["url"],
            "html": "a" * 5_000_000,
            "content_html": "b" * 5_000_000,
            "summary": "c" * 3_000_000,
        }
    ).encode()
    resp = client.post("/api/articles", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 413, resp.status_code
    assert "too large" in resp.json()["detail"]
    assert _count(runtime) == 0


def test_oversized_chunked_body_is_413(client: TestClient, runtime: Runtime, broker) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"url": "https://partner.example/story", "html": "'
        for _ in range(250):
            yield b"a" * 64_000
        yield b'"}'

    resp = client.post(
        "/api/articles", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413, resp.status_code
    assert _count(runtime) == 0


def test_lying_content_length_is_refused(client: TestClient, runtime: Runtime, broker) -> None:
    body = json.dumps(VALID).encode()
    resp = client.post(
        "/api/articles",
        content=body,
        headers={**AUTH, "Content-Type": "application/json", "Content-Length": "999999999"},
    )
    assert resp.status_code == 413
    assert _count(runtime) == 0
