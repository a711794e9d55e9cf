"""LinkedIn endpoint: contract tests from documented payloads.

No LinkedIn server can run here, so these are contract tests: a real HTTP server on 127.0.0.1
stands in for ``api.linkedin.com`` (and the OAuth token endpoint) at the configured URLs and answers
with the bodies LinkedIn documents (``tests/fixtures/share/linkedin/``, each file naming its source);
the tests assert the exact requests our code sends (method, path, headers, body) against the
documented shapes, and that each documented error answer maps to the right error class.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from worker.errors import EndpointDisabled, PermanentShareError, TransientShareError
from worker.http import HttpClient
from worker.share import MemoryTokenStore, ShareArticle, get_endpoint
from worker.share.linkedin import LinkedInEndpoint, escape_little

from .conftest import endpoint_config
from .contract import ContractServer, assert_request, error_fixtures, load, running

ACCESS = "li-FAKE-access-0123456789abcdef"
REFRESH = "li-FAKE-refresh-0123456789abcdef"
SECRET = "li-FAKE-secret-0123456789abcdef"
NEW_ACCESS = "li-FAKE-new-access-9876543210"
CLIENT_ID = "86yzm8jv8n4xcd"
AUTHOR = "urn:li:organization:5515715"
KEY = "syn_42_0123456789abcdef_linkedin-page"
TOKENS = (ACCESS, REFRESH, SECRET, NEW_ACCESS)


@pytest.fixture
def api() -> Iterator[ContractServer]:
    yield from running()


def make(api: ContractServer, *, refresh: bool = False, **extra: Any) -> LinkedInEndpoint:
    data: dict[str, Any] = {
        "name": "linkedin-page",
        "kind": "linkedin",
        "api": api.url,
        "author": AUTHOR,
        "access_token": "${LI_ACCESS}",
        "token_url": f"{api.url}/oauth/v2/accessToken",
        "image": False,
        "version": "202505",  # the version of the documented request/response pairs in the fixtures
        **extra,
    }
    env = {"LI_ACCESS": ACCESS}
    if refresh:
        data.update(refresh_token="${LI_REFRESH}", client_id=CLIENT_ID, client_secret="${LI_SECRET}")
        env.update(LI_REFRESH=REFRESH, LI_SECRET=SECRET)
    port = api.url.rsplit(":", 1)[1]
    ep = get_endpoint(
        endpoint_config(data, env),
        http=HttpClient(timeout=5),
        media_http=HttpClient(timeout=5, allow_hosts=[f"127.0.0.1:{port}"]),
        tokens=MemoryTokenStore(),
    )
    assert isinstance(ep, LinkedInEndpoint)
    return ep


def values(api: ContractServer) -> dict[str, str]:
    return {
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "new_access_token": NEW_ACCESS,
        "upload_url": f"{api.url}/dms-uploads/C4E10AQFoyyAjHPMQuQ/uploaded-image/0",
    }


def assert_no_tokens(text: str) -> None:
    for token in TOKENS:
        assert token not in text


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def test_article_post_matches_the_documented_request(api: ContractServer, article: ShareArticle) -> None:
    pair = load("linkedin", "create_post")
    api.serve(pair)
    ep = make(api)
    preview = ep.render(article)
    assert preview.payload == pair["request"]["json"]
    assert preview.image is None
    assert_no_tokens(repr(preview))

    result = ep.publish(preview, KEY)

    (got,) = api.requests
    assert_request(got, pair["request"], values(api))
    assert result.remote_id == "urn:li:share:6844785523593134080"
    assert result.remote_url == "https://www.linkedin.com/feed/update/urn:li:share:6844785523593134080"
    assert not result.duplicate


def test_thumbnail_is_uploaded_and_referenced(api: ContractServer, article: ShareArticle) -> None:
    init = load("linkedin", "initialize_upload")
    api.serve(init, values(api))
    api.answer("GET", "/img/bvb.png", 200, png(), {"Content-Type": "image/png"})
    api.answer("PUT", "/dms-uploads/C4E10AQFoyyAjHPMQuQ/uploaded-image/0", 201)
    api.serve(load("linkedin", "create_post"))
    ep = make(api, image=True)
    with_image = ShareArticle(**{**article.__dict__, "image": f"{api.url}/img/bvb.png"})

    ep.publish(ep.render(with_image), KEY)

    (init_call,) = api.sent("POST", "/rest/images")
    assert_request(init_call, init["request"], values(api))
    (upload,) = api.sent("PUT", "/dms-uploads/C4E10AQFoyyAjHPMQuQ/uploaded-image/0")
    assert upload.body == png() and upload.headers["authorization"] == f"Bearer {ACCESS}"
    (post,) = api.sent("POST", "/rest/posts")
    assert post.json()["content"]["article"]["thumbnail"] == "urn:li:image:C4E10AQFoyyAjHPMQuQ"


def test_failed_upload_posts_the_article_without_thumbnail(
    api: ContractServer, article: ShareArticle
) -> None:
    api.answer("GET", "/img/bvb.png", 200, png(), {"Content-Type": "image/png"})
    api.answer("POST", "/rest/images", 500, {"status": 500, "message": "Internal Server Error"})
    api.serve(load("linkedin", "create_post"))
    ep = make(api, image=True)
    with_image = ShareArticle(**{**article.__dict__, "image": f"{api.url}/img/bvb.png"})
    result = ep.publish(ep.render(with_image), KEY)
    (post,) = api.sent("POST", "/rest/posts")
    assert "thumbnail" not in post.json()["content"]["article"]
    assert result.remote_id == "urn:li:share:6844785523593134080"


def test_commentary_escapes_little_reserved_characters() -> None:
    text = "BET (+1,2%) [live] <ro> a_b *x* ~y~ @ana {c} | \\ #economie https://ex.ro/a_(b)?q=1"
    assert escape_little(text) == (
        "BET \\(+1,2%\\) \\[live\\] \\<ro\\> a\\_b \\*x\\* \\~y\\~ \\@ana \\{c\\} \\| \\\\ "
        "#economie https://ex.ro/a_(b)?q=1"
    )


def test_401_refreshes_once_with_client_credentials(api: ContractServer, article: ShareArticle) -> None:
    refresh = load("linkedin", "refresh_token")
    api.serve(load("linkedin", "errors/unauthorized"))
    api.serve(load("linkedin", "create_post"))
    api.serve(refresh, values(api))
    ep = make(api, refresh=True)
    result = ep.publish(ep.render(article), KEY)
    (token_call,) = api.sent("POST", "/oauth/v2/accessToken")
    assert_request(token_call, refresh["request"], values(api))
    first, second = api.sent("POST", "/rest/posts")
    assert first.headers["authorization"] == f"Bearer {ACCESS}"
    assert second.headers["authorization"] == f"Bearer {NEW_ACCESS}"
    assert result.remote_id.startswith("urn:li:share:")
    assert ep.tokens.load("linkedin-page")["access_token"] == NEW_ACCESS


def test_401_without_refresh_credentials_disables(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("linkedin", "errors/unauthorized"))
    ep = make(api)
    with pytest.raises(EndpointDisabled) as caught:
        ep.publish(ep.render(article), KEY)
    assert api.sent("POST", "/oauth/v2/accessToken") == []
    assert_no_tokens(str(caught.value))


def test_426_names_the_version_setting(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("linkedin", "errors/version_retired"))
    ep = make(api, version="202301")
    with pytest.raises(EndpointDisabled) as caught:
        ep.publish(ep.render(article), KEY)
    message = str(caught.value)
    assert "202301" in message and "endpoints[linkedin-page].version" in message


def test_duplicate_returns_the_existing_post(api: ContractServer, article: ShareArticle) -> None:
    api.serve(load("linkedin", "errors/duplicate"))
    ep = make(api)
    result = ep.publish(ep.render(article), KEY)
    assert result.duplicate
    assert result.remote_id == "urn:li:share:7141138937766391808"
    assert result.remote_url == "https://www.linkedin.com/feed/update/urn:li:share:7141138937766391808"


@pytest.mark.parametrize("name", error_fixtures("linkedin"))
def test_documented_errors_map_to_the_error_tree(
    api: ContractServer, article: ShareArticle, name: str
) -> None:
    pair = load("linkedin", name)
    api.serve(pair)
    ep = make(api)
    if pair["expect"] == "duplicate":
        assert ep.publish(ep.render(article), KEY).duplicate
        return
    error = {"disabled": EndpointDisabled, "transient": TransientShareError, "permanent": PermanentShareError}
    with pytest.raises(error[pair["expect"]]) as caught:
        ep.publish(ep.render(article), KEY)
    if pair["expect"] == "permanent":
        assert not isinstance(caught.value, EndpointDisabled)
    assert_no_tokens(str(caught.value))


def test_long_text_fits_3000_escaped_utf16_units(api: ContractServer, article: ShareArticle) -> None:
    long = ShareArticle(**{**article.__dict__, "summary": "(Știri) [BET] " * 400})
    ep = make(api)
    preview = ep.render(long)
    commentary = preview.payload["commentary"]
    assert len(commentary.encode("utf-16-le")) // 2 <= 3000
    assert long.url in commentary and preview.text.endswith("#BET")
