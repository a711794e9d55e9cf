"""Who may read the status: the page and ``/api/status`` are behind the token unless ``api.public_status``.

API clients send ``Authorization: Bearer <token>``; a browser gets a Basic sign-in prompt and sends
the token as the password. The demo config keeps them open so ``syndicate up`` stays easy. Also:
an endpoint disabled by a 401 shows the 401 once in its row, not in two cells.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from fastapi.testclient import TestClient

from config import load_config
from tests.web.conftest import web_config
from worker.ingest import PushedArticle, ingest_article
from worker.outbox.delivery import deliver_share
from worker.outbox.planning import plan_shares
from worker.process import process_article
from worker.runtime import Runtime
from worker.web.app import create_web_app

TOKEN = "web-test-token"  # tests/web/conftest.py
ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"status-access-test-secret-32byt!").decode()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _private(**api: Any) -> dict[str, Any]:
    """The web tests' config without ``public_status``: the default a deployment gets."""
    return web_config(api={"token": "${WEB_API_TOKEN}", **api})


@pytest.mark.parametrize("path", ["/", "/api/status"])
def test_status_is_behind_the_token_by_default(
    make_runtime: Callable[..., Runtime], redis_url: str, path: str
) -> None:
    runtime = make_runtime(_private(), redis_url=redis_url)
    assert runtime.config.api.public_status is False
    with TestClient(create_web_app(runtime)) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, _basic("ops", "wrong"), _basic(TOKEN, "")):
            refused = client.get(path, headers=headers)
            assert refused.status_code == 401, (headers, refused.status_code)
            assert "All partner news" not in refused.text  # nothing of the status leaks
            challenges = refused.headers.get_list("www-authenticate")
            assert any(c.startswith("Basic ") for c in challenges), challenges  # a browser prompts
            assert "token" in refused.json()["detail"]
        assert client.head(path).status_code == 401
        for headers in ({"Authorization": f"Bearer {TOKEN}"}, _basic("anyone", TOKEN), _basic("", TOKEN)):
            allowed = client.get(path, headers=headers)
            assert allowed.status_code == 200, headers
            assert "All partner news" in allowed.text
        assert client.get("/healthz").status_code in (200, 503)  # health stays open for probes
        assert client.get("/api/docs").status_code == 200


def test_public_status_opens_page_and_api(make_runtime: Callable[..., Runtime], redis_url: str) -> None:
    runtime = make_runtime(_private(public_status=True), redis_url=redis_url)
    with TestClient(create_web_app(runtime)) as client:
        assert client.get("/").status_code == 200
        assert client.get("/api/status").json()["feeds"][0]["title"] == "All partner news"


def test_without_a_token_a_private_status_says_what_to_set(
    make_runtime: Callable[..., Runtime], redis_url: str
) -> None:
    runtime = make_runtime(web_config(api={}), redis_url=redis_url)
    with TestClient(create_web_app(runtime)) as client:
        resp = client.get("/")
    assert resp.status_code == 503
    assert "api.token" in resp.json()["detail"] and "api.public_status" in resp.json()["detail"]


def test_the_demo_config_keeps_the_status_open() -> None:
    """``syndicate up`` with config/syndicate.yaml: the Quick start opens the page without a token."""
    assert load_config(ROOT / "config" / "syndicate.yaml").api.public_status is True


@contextmanager
def refusing_partner() -> Iterator[tuple[str, list[bytes]]]:
    """A webhook receiver on 127.0.0.1 that answers every POST with 401; yields its URL and the bodies."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            body = b'{"error": "invalid signature key"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_401_that_disabled_an_endpoint_appears_once_in_its_row(
    make_runtime: Callable[..., Runtime], redis_url: str, broker: Any
) -> None:
    with refusing_partner() as (hook_url, received):
        config = web_config(
            endpoints=[
                {
                    "name": "partner-hook",
                    "kind": "webhook",
                    "url": hook_url,
                    "secret": "${HOOK_SECRET}",
                    "back_catalogue": True,
                }
            ]
        )
        runtime = make_runtime(config, redis_url=redis_url, env={"HOOK_SECRET": SECRET})
        article_id, _ = ingest_article(
            runtime,
            PushedArticle(
                url="https://partner.example/news/1",
                title="Story one",
                content_html="<p>Story one is long enough to be an article about the clusters.</p>",
            ),
        )
        process_article(runtime, article_id)
        [share_id] = plan_shares(runtime, article_id)
        deliver_share(runtime, share_id)
        assert received
    with TestClient(create_web_app(runtime)) as client:
        [endpoint] = client.get("/api/status").json()["endpoints"]
        assert endpoint["enabled"] is False and "401" in endpoint["disabled_reason"], endpoint
        page = lxml.html.fromstring(client.get("/").text)
    [row] = page.xpath("//tr[@data-endpoint='partner-hook']")
    text = " ".join(row.text_content().split())
    reason = " ".join(endpoint["disabled_reason"].split())
    assert text.count(reason) == 1, text
    assert len(re.findall(r"\b401\b", text)) == 1, text
