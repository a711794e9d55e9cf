"""GET /api/articles/{ref}/preview: what each endpoint would receive, behind the token, sending nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.pipeline.receivers import Receiver
from worker.ingest import PushedArticle, ingest_article
from worker.process import process_article
from worker.runtime import Runtime
from worker.web.app import create_web_app

SECRET = "whsec_" + base64.b64encode(b"web-preview-test-secret-32bytes!").decode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running webhook receiver (it must get nothing)."""
    rec = Receiver()
    rec.thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


@pytest.fixture
def previewing(
    make_runtime: Callable[..., Runtime],
    config_factory: Callable[..., dict[str, Any]],
    receiver: Receiver,
    redis_url: str,
) -> Iterator[tuple[TestClient, int]]:
    """The app over a runtime with a webhook and a file endpoint, and one pushed, processed article."""
    config = config_factory(
        endpoints=[
            {"name": "archive", "kind": "file", "path": "shares.jsonl"},
            {
                "name": "hook",
                "kind": "webhook",
                "url": receiver.url,
                "secret": "${PREVIEW_SECRET}",
                "feeds": ["it"],
            },
        ]
    )
    runtime = make_runtime(config, redis_url=redis_url, env={"PREVIEW_SECRET": SECRET})
    article_id, _ = ingest_article(
        runtime,
        PushedArticle(
            url="https://partner.example/news/solar",
            title="Solar cluster opens a shared test lab",
            content_html="<p>The cluster opened a lab for grid-forming inverters, shared by ten members.</p>",
            category="Agriculture",
        ),
    )
    process_article(runtime, article_id)
    with TestClient(create_web_app(runtime), raise_server_exceptions=False) as client:
        yield client, article_id


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
def test_preview_needs_the_api_token(previewing: tuple[TestClient, int], headers: dict[str, str]) -> None:
    client, article_id = previewing
    resp = client.get(f"/api/articles/{article_id}/preview", headers=headers)
    assert resp.status_code == 401
    assert "Solar" not in resp.text


def test_preview_shows_every_endpoint_and_sends_nothing(
    previewing: tuple[TestClient, int], auth: dict[str, str], receiver: Receiver
) -> None:
    client, article_id = previewing
    resp = client.get(f"/api/articles/{article_id}/preview", headers=auth)
    assert resp.status_code == 200
    entries = {e["endpoint"]: e for e in resp.json()}
    assert set(entries) == {"archive", "hook"}
    assert entries["archive"]["note"] is None  # pushed: news, not back catalogue
    assert entries["hook"]["note"] == "not routed to this endpoint"  # not in the "it" feed
    assert entries["archive"]["text"].startswith("Solar cluster opens a shared test lab")
    assert entries["hook"]["payload"]["data"]["article_id"] == article_id
    assert SECRET not in json.dumps(resp.json())
    assert receiver.received == []

    one = client.get(f"/api/articles/{article_id}/preview", params={"endpoint": "hook"}, headers=auth)
    assert [e["endpoint"] for e in one.json()] == ["hook"]
    assert receiver.received == []


def test_preview_of_an_unknown_article_or_endpoint_is_404(
    previewing: tuple[TestClient, int], auth: dict[str, str]
) -> None:
    client, article_id = previewing
    assert client.get("/api/articles/999999/preview", headers=auth).status_code == 404
    resp = client.get(f"/api/articles/{article_id}/preview", params={"endpoint": "nope"}, headers=auth)
    assert resp.status_code == 404 and "nope" in resp.json()["detail"]


def test_preview_by_article_url(previewing: tuple[TestClient, int], auth: dict[str, str]) -> None:
    client, article_id = previewing
    for ref in ("https://partner.example/news/solar", "https%3A%2F%2Fpartner.example%2Fnews%2Fsolar"):
        resp = client.get(f"/api/articles/{ref}/preview", params={"endpoint": "archive"}, headers=auth)
        assert resp.status_code == 200, (ref, resp.text)
        assert resp.json()[0]["payload"]["data"]["article_id"] == article_id
