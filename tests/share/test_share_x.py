"""X endpoint: contract tests from documented payloads.

No X server can run here, so these are contract tests: a real HTTP server on 127.0.0.1 stands in
for ``api.x.com`` at the configured ``api`` URL and answers with the response bodies X documents
(``tests/fixtures/share/x/``, each file naming its source); the tests assert the exact requests our
code sends (method, path, headers, body) against the documented shapes, and that each documented
error answer maps to the right error class.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.errors import EndpointDisabled, PermanentShareError, TransientShareError
from worker.http import HttpClient
from worker.share import MemoryTokenStore, ShareArticle, get_endpoint
from worker.share.text import x_length
from worker.share.x import XEndpoint

from .conftest import endpoint_config
from .contract import ContractServer, assert_request, error_fixtures, load, running

ACCESS = "xat-FAKE-access-0123456789abcdef"
REFRESH = "xrt-FAKE-refresh-0123456789abcdef"
SECRET = "xcs-FAKE-secret-0123456789abcdef"
NEW_ACCESS = "xat-FAKE-new-access-9876543210"
NEW_REFRESH = "xrt-FAKE-new-refresh-9876543210"
CLIENT_ID = "rG9n6402A3dbUJKzXTNX4oWHJ"
KEY = "syn_42_0123456789abcdef_x-main"
TOKENS = (ACCESS, REFRESH, SECRET, NEW_ACCESS, NEW_REFRESH)


@dataclass
class Clock:
    """A settable clock for token expiry."""

    now: datetime = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def api() -> Iterator[ContractServer]:
    yield from running()


def make(
    api: ContractServer,
    *,
    access: bool = True,
    secret: bool = True,
    refresh: str = REFRESH,
    tokens: MemoryTokenStore | None = None,
    clock: Clock | None = None,
    **extra: Any,
) -> XEndpoint:
    data: dict[str, Any] = {
        "name": "x-main",
        "kind": "x",
        "api": api.url,
        "client_id": CLIENT_ID,
        "refresh_token": "${X_REFRESH}",
        **extra,
    }
    env = {"X_REFRESH": refresh}
    if access:
        data["access_token"] = "${X_ACCESS}"
        env["X_ACCESS"] = ACCESS
    if secret:
        data["client_secret"] = "${X_SECRET}"
        env["X_SECRET"] = SECRET
    ep = get_endpoint(
        endpoint_config(data, env),
        http=HttpClient(timeout=5),
        tokens=tokens if tokens is not None else MemoryTokenStore(),
        clock=clock or Clock(),
    )
    assert isinstance(ep, XEndpoint)
    return ep


def values() -> dict[str, str]:
    return {
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "client_id": CLIENT_ID,
        "basic": base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode(),
        "new_access_token": NEW_ACCESS,
        "new_refresh_token": NEW_REFRESH,
    }


def assert_no_tokens(text: str) -> None:
    for token in TOKENS:
        assert token not in text


def test_post_matches_the_documented_request(api: ContractServer, article: ShareArticle) -> None:
    pair = load("x", "create_post")
    api.serve(pair)
    ep = make(api)
    preview = ep.render(article)
    assert preview.payload == pair["request"]["json"]
    assert_no_tokens(repr(preview))

    result = ep.publish(preview, KEY)

    (got,) = api.requests
    assert_request(got, pair["request"], values())
    assert result.remote_id == "1445880548472328192"
    assert result.remote_url == "https://x.com/i/web/status/1445880548472328192"
    assert not result.duplicate
    assert_no_tokens(repr(result))


def test_without_an_access_token_it_refreshes_first_with_basic_auth(
    api: ContractServer, article: ShareArticle
) -> None:
    refresh = load("x", "refresh_token")
    api.serve(refresh, values())
    api.serve(load("x", "create_post"))
    tokens = MemoryTokenStore()
    ep = make(api, access=False, tokens=tokens)

    ep.publish(ep.render(article), KEY)

    token_call, post = api.requests
    assert_request(token_call, refresh["request"], values())
    assert post.headers["authorization"] == f"Bearer {NEW_ACCESS}"
    stored = tokens.load("x-main")
    assert stored["access_token"] == NEW_ACCESS and stored["refresh_token"] == NEW_REFRESH
    assert stored["expires_at"] == Clock().now.timestamp() + 7200


def test_a_public_client_sends_no_basic_auth(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("x", "refresh_token"), values())
    api.serve(load("x", "create_post"))
    ep = make(api, access=False, secret=False)
    ep.publish(ep.render(article), KEY)
    token_call = api.sent("POST", "/2/oauth2/token")[0]
    assert "authorization" not in token_call.headers
    assert token_call.form() == {
        "refresh_token": REFRESH,
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
    }


def test_rotated_refresh_token_is_used_from_then_on(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("x", "refresh_token"), values())
    api.serve(load("x", "create_post"))
    clock = Clock()
    tokens = MemoryTokenStore()
    ep = make(api, access=False, tokens=tokens, clock=clock)
    ep.publish(ep.render(article), KEY)

    # Within the token's lifetime: no refresh.
    clock.now += timedelta(minutes=30)
    ep.publish(ep.render(article), KEY)
    assert len(api.sent("POST", "/2/oauth2/token")) == 1

    # Close to expiry (7200 s): refresh with the rotated token, not the config's seed.
    clock.now += timedelta(minutes=88)
    again = make(api, access=False, tokens=tokens, clock=clock)  # a new process, same store
    again.publish(again.render(article), KEY)
    calls = api.sent("POST", "/2/oauth2/token")
    assert len(calls) == 2
    assert calls[1].form()["refresh_token"] == NEW_REFRESH


def test_new_seed_in_the_environment_replaces_stale_stored_tokens(
    api: ContractServer, article: ShareArticle
) -> None:
    tokens = MemoryTokenStore()
    tokens.save("x-main", {"seed": "old", "access_token": "stale-access-token", "refresh_token": "dead"})
    api.serve(load("x", "create_post"))
    ep = make(api, tokens=tokens)
    ep.publish(ep.render(article), KEY)
    assert api.requests[0].headers["authorization"] == f"Bearer {ACCESS}"


def test_401_refreshes_once_and_resends(api: ContractServer, article: ShareArticle) -> None:
    api.answer("POST", "/2/tweets", 401, {"title": "Unauthorized", "status": 401, "detail": "Unauthorized"})
    api.serve(load("x", "create_post"))
    api.serve(load("x", "refresh_token"), values())
    ep = make(api)
    result = ep.publish(ep.render(article), KEY)
    first, _, second = api.requests
    assert first.headers["authorization"] == f"Bearer {ACCESS}"
    assert second.headers["authorization"] == f"Bearer {NEW_ACCESS}"
    assert result.remote_id == "1445880548472328192"


def test_401_after_refresh_disables(api: ContractServer, article: ShareArticle) -> None:
    api.answer("POST", "/2/tweets", 401, {"title": "Unauthorized", "status": 401, "detail": "Unauthorized"})
    api.serve(load("x", "refresh_token"), values())
    ep = make(api)
    with pytest.raises(EndpointDisabled) as caught:
        ep.publish(ep.render(article), KEY)
    assert len(api.sent("POST", "/2/oauth2/token")) == 1
    assert len(api.sent("POST", "/2/tweets")) == 2
    assert_no_tokens(str(caught.value))


def test_refused_refresh_disables_and_names_the_setting(api: ContractServer, article: ShareArticle) -> None:
    api.answer(
        "POST",
        "/2/oauth2/token",
        400,
        {
            "error": "invalid_request",
            "error_description": f"Value passed for the token was invalid: {REFRESH}",
        },
    )
    ep = make(api, access=False)
    with pytest.raises(EndpointDisabled) as caught:
        ep.publish(ep.render(article), KEY)
    assert "refresh_token" in str(caught.value)
    assert_no_tokens(str(caught.value))
    assert api.sent("POST", "/2/tweets") == []


@pytest.mark.parametrize("name", error_fixtures("x"))
def test_documented_errors_map_to_the_error_tree(
    api: ContractServer, article: ShareArticle, name: str
) -> None:
    pair = load("x", name)
    now = time.time()
    api.serve(pair, {"reset": str(int(now) + 600), "reset_day": str(int(now) + 7200)})
    api.serve(load("x", "refresh_token"), values())  # used by the 401 case
    ep = make(api)
    expect = pair["expect"]
    if expect == "duplicate":
        result = ep.publish(ep.render(article), KEY)
        assert result.duplicate and result.remote_url is None
        return
    error = {"disabled": EndpointDisabled, "transient": TransientShareError, "permanent": PermanentShareError}
    with pytest.raises(error[expect]) as caught:
        ep.publish(ep.render(article), KEY)
    if expect == "permanent":
        assert not isinstance(caught.value, EndpointDisabled)
    assert_no_tokens(str(caught.value))
    wait = getattr(caught.value, "retry_after", None)
    if name == "errors/rate_limited":
        assert wait is not None and 590 <= wait <= 600
    if name == "errors/daily_cap":
        # The 24-hour cap is used up: wait for its reset, not the 15-minute window's.
        assert wait is not None and 7190 <= wait <= 7200


def test_an_error_body_echoing_the_token_is_redacted(api: ContractServer, article: ShareArticle) -> None:
    api.answer(
        "POST", "/2/tweets", 400, {"title": "Invalid Request", "detail": f"bad header Bearer {ACCESS}"}
    )
    ep = make(api)
    with pytest.raises(PermanentShareError) as caught:
        ep.publish(ep.render(article), KEY)
    assert ACCESS not in str(caught.value) and "***" in str(caught.value)


def test_long_text_fits_x_weighted_limit(api: ContractServer, article: ShareArticle) -> None:
    long = ShareArticle(
        **{**article.__dict__, "title": "Știri " * 80, "tags": tuple(f"tag{i}x" for i in range(30))}
    )
    ep = make(api, template="{title}\n\n{summary}\n\n{url}\n\n{hashtags}")
    text = ep.render(long).text
    assert x_length(text) <= 280
    assert long.url in text
    # The summary went first, then hashtags from the last, and the title was cut at a word with "…".
    assert "Indicele" not in text and "#tag29x" not in text
    assert text.split("\n")[0].endswith("…")


def test_not_idempotent_and_no_lookup(api: ContractServer, article: ShareArticle) -> None:
    ep = make(api)
    assert ep.idempotent is False
    with pytest.raises(NotImplementedError):
        ep.lookup(ep.render(article), KEY)
