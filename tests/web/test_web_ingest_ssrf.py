"""POST /api/articles never turns Syndicate's own services into articles, whatever ``allow_hosts`` says.

The config admits all of loopback (``127.0.0.0/8``, ``::1``, ``localhost``), as a demo or a
single-machine deployment would, so only the own-service rules stand between a pushed URL and the
app's own port, Flower's port and Redis's port. Real HTTP servers listen on the ports the runtime
believes are the app's and Flower's, and the session's real Redis is the Redis: a refused push is a
422 naming the service, stores no article, queues no task and sends those servers nothing. A
partner on 127.0.0.1 at another port is accepted (202), and the worker stage then really fetches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from config.model import parse_config
from config.settings import Settings
from tests.support.httpserver import HTTPTestServer
from worker.process import process_article
from worker.runtime import Runtime
from worker.store.db import get_engine, upgrade
from worker.store.models import Article
from worker.web.app import create_web_app

TOKEN = "web-test-token"  # what tests/web/conftest.py configures as ${WEB_API_TOKEN}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STORY = (
    b"<!doctype html><html lang='en'><head><title>Partner story</title></head><body><article>"
    b"<h1>Partner story</h1>"
    + b"<p>The partner's council agreed the harbour plan after a long debate about its cost.</p>" * 6
    + b"</article></body></html>"
)
FORMS = ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]"]
SERVICES = {"app": "Syndicate's web app", "flower": "Flower", "redis": "Redis"}


class Services:
    """The servers behind the ports the runtime protects, and a partner on another port."""

    def __init__(self, app: HTTPTestServer, flower: HTTPTestServer, partner: HTTPTestServer, redis_port: int):
        """Hold the three servers and the real Redis's port."""
        self.app, self.flower, self.partner, self.redis_port = app, flower, partner, redis_port

    def port(self, service: str) -> int:
        """The port of ``service`` (app, flower or redis)."""
        return {"app": self.app.port, "flower": self.flower.port, "redis": self.redis_port}[service]


@pytest.fixture
def services(redis_url: str) -> Iterator[Services]:
    """Stand-ins for the web app's and Flower's ports (they log every request), and a partner site."""
    with HTTPTestServer(root=None) as app, HTTPTestServer(root=None) as flower:
        with HTTPTestServer(root=None) as partner:
            partner.content("/news/partner-harbour-story.html", STORY)
            yield Services(app, flower, partner, int(redis_url.rsplit(":", 1)[1].split("/")[0]))


@pytest.fixture
def guarded(
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    services: Services,
    config_factory: Callable[..., dict[str, Any]],
) -> Iterator[Runtime]:
    """A runtime whose web app and Flower are on the ``services`` ports and whose Redis is the real one."""
    upgrade(database_url)
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        var_dir=tmp_path / "var",
        http_port=services.app.port,
        flower_port=services.flower.port,
    )
    data = config_factory(fetch={"allow_hosts": ["127.0.0.0/8", "::1", "localhost"], "timeout": "5s"})
    config = parse_config(data, lookup={"WEB_API_TOKEN": TOKEN}.get)
    yield Runtime(settings=settings, config=config, base_dir=tmp_path)
    get_engine(database_url).dispose()


def _articles(runtime: Runtime) -> int:
    with runtime.session() as session:
        return int(session.scalar(select(func.count()).select_from(Article)) or 0)


CASES = [(service, form) for service in SERVICES for form in FORMS]


@pytest.mark.parametrize(("service", "form"), CASES, ids=[f"{s}-{f}" for s, f in CASES])
def test_push_of_an_own_service_url_is_refused(
    guarded: Runtime, services: Services, broker: redis.Redis, service: str, form: str
) -> None:
    url = f"http://{form}:{services.port(service)}/api/tasks?x=1"
    with TestClient(create_web_app(guarded), raise_server_exceptions=False) as client:
        resp = client.post("/api/articles", json={"url": url}, headers=AUTH)

    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert detail.startswith("url: ") and f":{services.port(service)}" in detail
    assert SERVICES[service] in detail and "never fetched" in detail
    assert _articles(guarded) == 0
    assert broker.llen("fetch") == 0
    assert services.app.requests == [] and services.flower.requests == []


def test_push_of_an_allowed_partner_on_another_loopback_port_is_accepted(
    guarded: Runtime, services: Services, broker: redis.Redis
) -> None:
    url = services.partner.url("/news/partner-harbour-story.html")
    with TestClient(create_web_app(guarded), raise_server_exceptions=False) as client:
        resp = client.post("/api/articles", json={"url": url}, headers=AUTH)

    assert resp.status_code == 202, resp.text
    assert resp.json()["status"] == "queued" and broker.llen("fetch") == 1
    # What the worker would do with the queued id: the partner is fetched, the own services are not.
    outcome = process_article(guarded, resp.json()["id"])
    assert outcome.status == "ready"
    assert [r.path for r in services.partner.requests if r.path != "/robots.txt"] == [
        "/news/partner-harbour-story.html"
    ]
    assert services.app.requests == [] and services.flower.requests == []
