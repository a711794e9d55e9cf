"""Facebook endpoint: contract tests from documented payloads.

No Graph API server can run here, so these are contract tests: a real HTTP server on 127.0.0.1
stands in for ``graph.facebook.com`` at the configured ``api`` URL and answers with the bodies the
Graph API documents (``tests/fixtures/share/facebook/``, each file naming its source); the tests
assert the exact request our code sends (method, path, headers, body) against the documented shape,
and that each documented error code maps to the right error class.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from worker.errors import EndpointDisabled, PermanentShareError, TransientShareError
from worker.http import HttpClient
from worker.share import ShareArticle, get_endpoint
from worker.share.facebook import FacebookEndpoint

from .conftest import endpoint_config
from .contract import ContractServer, assert_request, error_fixtures, load, running

PAGE_TOKEN = "EAAG-FAKE-page-token-0123456789abcdef"
PAGE_ID = "104528252291000"
KEY = "syn_42_0123456789abcdef_fb-page"


@pytest.fixture
def api() -> Iterator[ContractServer]:
    yield from running()


def make(api: ContractServer, **extra: Any) -> FacebookEndpoint:
    data = {
        "name": "fb-page",
        "kind": "facebook",
        "api": api.url,
        "page_id": PAGE_ID,
        "page_access_token": "${FB_TOKEN}",
        **extra,
    }
    ep = get_endpoint(endpoint_config(data, {"FB_TOKEN": PAGE_TOKEN}), http=HttpClient(timeout=5))
    assert isinstance(ep, FacebookEndpoint)
    return ep


def test_feed_post_matches_the_documented_request(api: ContractServer, article: ShareArticle) -> None:
    pair = load("facebook", "create_post")
    api.serve(pair)
    ep = make(api)
    preview = ep.render(article)
    documented = dict(pair["request"]["form"])
    documented.pop("access_token")
    assert preview.payload == documented
    assert PAGE_TOKEN not in repr(preview)

    result = ep.publish(preview, KEY)

    (got,) = api.requests
    assert_request(got, pair["request"], {"page_token": PAGE_TOKEN})
    # The token is in the body, not the URL.
    assert got.query == {}
    assert result.remote_id == "104528252291000_122104839494064533"
    assert result.remote_url == "https://www.facebook.com/104528252291000_122104839494064533"


def test_utm_parameters_go_into_the_link(api: ContractServer, article: ShareArticle) -> None:
    ep = make(api, utm={"source": "facebook", "medium": "social"})
    payload = ep.render(article).payload
    assert payload["link"] == article.url + "?utm_source=facebook&utm_medium=social"


@pytest.mark.parametrize("name", error_fixtures("facebook"))
def test_documented_errors_map_to_the_error_tree(
    api: ContractServer, article: ShareArticle, name: str
) -> None:
    pair = load("facebook", name)
    api.serve(pair)
    ep = make(api)
    if pair["expect"] == "duplicate":
        result = ep.publish(ep.render(article), KEY)
        assert result.duplicate and result.remote_url is None
        return
    error = {"disabled": EndpointDisabled, "transient": TransientShareError, "permanent": PermanentShareError}
    with pytest.raises(error[pair["expect"]]) as caught:
        ep.publish(ep.render(article), KEY)
    if pair["expect"] == "permanent":
        assert not isinstance(caught.value, EndpointDisabled)
    if pair["expect"] == "transient":
        assert getattr(caught.value, "retry_after", None) is not None or pair["response"]["status"] >= 500
    message = str(caught.value)
    assert PAGE_TOKEN not in message
    assert f"code {pair['response']['json']['error'].get('code')}" in message or "code None" in message


def test_an_error_echoing_the_token_is_redacted(api: ContractServer, article: ShareArticle) -> None:
    api.answer(
        "POST",
        f"/v21.0/{PAGE_ID}/feed",
        400,
        {
            "error": {
                "message": f"Invalid parameter access_token={PAGE_TOKEN}",
                "type": "GraphMethodException",
                "code": 100,
            }
        },
    )
    ep = make(api)
    with pytest.raises(PermanentShareError) as caught:
        ep.publish(ep.render(article), KEY)
    assert PAGE_TOKEN not in str(caught.value) and "***" in str(caught.value)


def test_not_idempotent_and_no_lookup(api: ContractServer, article: ShareArticle) -> None:
    ep = make(api)
    assert not ep.idempotent
    with pytest.raises(NotImplementedError):
        ep.lookup(ep.render(article), KEY)
