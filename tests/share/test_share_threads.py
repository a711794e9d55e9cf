"""Threads endpoint: contract tests from documented payloads.

No Threads server can run here, so these are contract tests: a real HTTP server on 127.0.0.1
stands in for ``graph.threads.net`` at the configured ``api`` URL and answers with the bodies the
Threads API documents (``tests/fixtures/share/threads/``, each file naming its source); the tests
assert the exact requests our code sends (method, path, query, body) against the documented shapes,
and that each documented error code maps to the right error class.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.errors import EndpointDisabled, PermanentShareError, TransientShareError
from worker.http import HttpClient
from worker.share import MemoryTokenStore, ShareArticle, get_endpoint
from worker.share.oauth import seed_digest
from worker.share.threads import ThreadsEndpoint, threads_length

from .conftest import endpoint_config
from .contract import ContractServer, assert_request, error_fixtures, load, running

TOKEN = "THAA-FAKE-long-lived-0123456789abcdef"
NEW_TOKEN = "THAA-FAKE-refreshed-9876543210fedcba"
KEY = "syn_42_0123456789abcdef_threads-ro"
CONTAINER = "17889615691921648"
POST = "18018394186158541"
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def api() -> Iterator[ContractServer]:
    yield from running()


def known_token_store(days_left: float = 50) -> MemoryTokenStore:
    """A store whose token was refreshed before and expires in ``days_left`` days."""
    tokens = MemoryTokenStore()
    tokens.save(
        "threads-ro",
        {
            "seed": seed_digest(TOKEN),
            "access_token": TOKEN,
            "expires_at": (START + timedelta(days=days_left)).timestamp(),
            "containers": {},
        },
    )
    return tokens


def make(
    api: ContractServer, *, tokens: MemoryTokenStore | None = None, clock: Clock | None = None, **extra: Any
) -> ThreadsEndpoint:
    data = {
        "name": "threads-ro",
        "kind": "threads",
        "api": api.url,
        "access_token": "${TH_TOKEN}",
        "image": False,
        **extra,
    }
    ep = get_endpoint(
        endpoint_config(data, {"TH_TOKEN": TOKEN}),
        http=HttpClient(timeout=5),
        tokens=tokens if tokens is not None else known_token_store(),
        clock=clock or Clock(),
    )
    assert isinstance(ep, ThreadsEndpoint)
    return ep


def serve_happy_path(api: ContractServer) -> None:
    api.serve(load("threads", "create_container"))
    api.serve(load("threads", "publish"))
    api.serve(load("threads", "permalink"))


def test_text_post_matches_the_documented_requests(api: ContractServer, article: ShareArticle) -> None:
    create, publish, permalink = (load("threads", n) for n in ("create_container", "publish", "permalink"))
    serve_happy_path(api)
    ep = make(api)
    preview = ep.render(article)
    documented = dict(create["request"]["form"])
    documented.pop("access_token")
    assert preview.payload == documented
    assert TOKEN not in repr(preview)

    result = ep.publish(preview, KEY)

    got_create, got_publish, got_permalink = api.requests
    token = {"access_token": TOKEN}
    assert_request(got_create, create["request"], token)
    assert_request(got_publish, publish["request"], token)
    assert_request(got_permalink, permalink["request"], token)
    assert got_create.query == {} and got_publish.query == {}  # the token is in the body
    assert result.remote_id == POST
    assert result.remote_url == "https://www.threads.net/@stiri_ro/post/C8uR3i2pXyZ"
    assert ep.tokens.load("threads-ro")["containers"] == {}


def test_image_post_uses_the_image_url(api: ContractServer, article: ShareArticle) -> None:
    pair = load("threads", "create_image_container")
    api.serve(pair)
    api.serve(load("threads", "publish"))
    api.serve(load("threads", "permalink"))
    ep = make(api, image=True)
    ep.publish(ep.render(article), KEY)
    assert_request(api.requests[0], pair["request"], {"access_token": TOKEN})


def test_permalink_failure_does_not_fail_the_share(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("threads", "create_container"))
    api.serve(load("threads", "publish"))
    api.answer(
        "GET", f"/v1.0/{POST}", 500, {"error": {"message": "boom", "type": "OAuthException", "code": 2}}
    )
    ep = make(api)
    result = ep.publish(ep.render(article), KEY)
    assert result.remote_id == POST and result.remote_url is None


def test_transient_publish_failure_reuses_the_container(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("threads", "create_container"))
    api.answer(
        "POST",
        "/v1.0/me/threads_publish",
        500,
        {"error": {"message": "try later", "type": "OAuthException", "code": 2}},
    )
    api.serve(load("threads", "publish"))
    api.serve(load("threads", "container_status"), {"status": "FINISHED"})
    api.serve(load("threads", "permalink"))
    tokens = known_token_store()
    ep = make(api, tokens=tokens)
    preview = ep.render(article)
    with pytest.raises(TransientShareError):
        ep.publish(preview, KEY)
    assert tokens.load("threads-ro")["containers"][KEY]["id"] == CONTAINER

    retry = make(api, tokens=tokens)  # a later task, same store
    result = retry.publish(preview, KEY)

    assert len(api.sent("POST", "/v1.0/me/threads")) == 1  # one container only
    status_call = api.sent("GET", f"/v1.0/{CONTAINER}")[0]
    assert_request(status_call, load("threads", "container_status")["request"], {"access_token": TOKEN})
    publishes = api.sent("POST", "/v1.0/me/threads_publish")
    assert [p.form()["creation_id"] for p in publishes] == [CONTAINER, CONTAINER]
    assert result.remote_id == POST
    assert tokens.load("threads-ro")["containers"] == {}


def test_container_published_by_a_lost_answer_counts_as_sent(
    api: ContractServer, article: ShareArticle
) -> None:
    tokens = known_token_store()
    state = tokens.load("threads-ro")
    state["containers"] = {KEY: {"id": CONTAINER, "created_at": START.timestamp()}}
    tokens.save("threads-ro", state)
    api.serve(load("threads", "container_status"), {"status": "PUBLISHED"})
    ep = make(api, tokens=tokens)
    result = ep.publish(ep.render(article), KEY)
    assert result.duplicate
    assert api.sent("POST", "/v1.0/me/threads") == [] and api.sent("POST", "/v1.0/me/threads_publish") == []


def test_expired_container_is_replaced(api: ContractServer, article: ShareArticle) -> None:
    tokens = known_token_store()
    state = tokens.load("threads-ro")
    state["containers"] = {KEY: {"id": CONTAINER, "created_at": START.timestamp()}}
    tokens.save("threads-ro", state)
    api.serve(load("threads", "container_status"), {"status": "EXPIRED"})
    serve_happy_path(api)
    ep = make(api, tokens=tokens)
    assert ep.publish(ep.render(article), KEY).remote_id == POST
    assert len(api.sent("POST", "/v1.0/me/threads")) == 1


def test_unknown_expiry_refreshes_at_first_use_and_stores_the_token(
    api: ContractServer, article: ShareArticle
) -> None:
    refresh = load("threads", "refresh_token")
    api.serve(refresh, {"new_access_token": NEW_TOKEN})
    serve_happy_path(api)
    tokens = MemoryTokenStore()
    ep = make(api, tokens=tokens)
    ep.publish(ep.render(article), KEY)
    assert_request(api.requests[0], refresh["request"], {"access_token": TOKEN})
    assert api.requests[1].form()["access_token"] == NEW_TOKEN
    stored = tokens.load("threads-ro")
    assert stored["access_token"] == NEW_TOKEN
    assert stored["expires_at"] == START.timestamp() + 5183944


def test_refresh_ahead_of_time_is_best_effort(api: ContractServer, article: ShareArticle) -> None:
    api.answer(
        "GET",
        "/refresh_access_token",
        400,
        {"error": {"message": "Token is too new to refresh", "type": "OAuthException", "code": 100}},
    )
    serve_happy_path(api)
    tokens = MemoryTokenStore()
    clock = Clock()
    ep = make(api, tokens=tokens, clock=clock)
    ep.publish(ep.render(article), KEY)
    assert api.requests[1].form()["access_token"] == TOKEN
    # Not tried again for a day.
    clock.now += timedelta(hours=2)
    ep.publish(ep.render(article), KEY)
    assert len(api.sent("GET", "/refresh_access_token")) == 1


def test_token_near_expiry_is_refreshed(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("threads", "refresh_token"), {"new_access_token": NEW_TOKEN})
    serve_happy_path(api)
    ep = make(api, tokens=known_token_store(days_left=3))
    ep.publish(ep.render(article), KEY)
    assert len(api.sent("GET", "/refresh_access_token")) == 1
    assert api.sent("POST", "/v1.0/me/threads")[0].form()["access_token"] == NEW_TOKEN


def test_error_190_refreshes_once_and_retries(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("threads", "errors/token_expired"))
    api.serve(load("threads", "create_container"))
    api.serve(load("threads", "refresh_token"), {"new_access_token": NEW_TOKEN})
    api.serve(load("threads", "publish"))
    api.serve(load("threads", "permalink"))
    ep = make(api)
    assert ep.publish(ep.render(article), KEY).remote_id == POST
    first, second = api.sent("POST", "/v1.0/me/threads")
    assert first.form()["access_token"] == TOKEN and second.form()["access_token"] == NEW_TOKEN


@pytest.mark.parametrize("name", error_fixtures("threads"))
def test_documented_errors_map_to_the_error_tree(
    api: ContractServer, article: ShareArticle, name: str
) -> None:
    pair = load("threads", name)
    api.serve(pair)
    api.serve(load("threads", "refresh_token"), {"new_access_token": NEW_TOKEN})
    ep = make(api)
    error = {"disabled": EndpointDisabled, "transient": TransientShareError, "permanent": PermanentShareError}
    with pytest.raises(error[pair["expect"]]) as caught:
        ep.publish(ep.render(article), KEY)
    if pair["expect"] == "permanent":
        assert not isinstance(caught.value, EndpointDisabled)
    assert TOKEN not in str(caught.value) and NEW_TOKEN not in str(caught.value)
    assert ep.tokens.load("threads-ro")["containers"] == {}


def test_threads_length_counts_emoji_as_utf8_bytes() -> None:
    assert threads_length("Știri") == 5
    assert threads_length("📈") == 4
    assert threads_length("👍🏽") == 8
    assert threads_length("a❤️b") == 2 + len("❤️".encode())


def test_long_text_fits_500(api: ContractServer, article: ShareArticle) -> None:
    long = ShareArticle(**{**article.__dict__, "summary": "📈 Bursa " * 200})
    text = make(api).render(long).text
    assert threads_length(text) <= 500 and long.url in text
