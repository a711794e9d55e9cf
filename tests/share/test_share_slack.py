"""Contract tests of the Slack endpoint, from documented incoming-webhook payloads.

No Slack server can run here, so these are contract tests: the ``receiver`` (a real HTTP server on
127.0.0.1) stands in for ``hooks.slack.com/services/...`` and answers with the documented
plain-text bodies stored in ``tests/fixtures/share/slack/`` (each file names its source). The
tests assert the exact request the endpoint sends (method, path, headers, JSON body) against the
documented Block Kit shape, and that each documented error answer maps to the right error class.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from worker.errors import EndpointDisabled, PermanentShareError, ShareError, TransientShareError
from worker.share import ShareArticle, get_endpoint
from worker.share.slack import HEADER_LIMIT, SECTION_LIMIT, SlackEndpoint, escape, link, section_text

from .conftest import FIXTURES, Receiver, endpoint_config

# The shape of an incoming-webhook path (team, bot, 24-character token).
TEAM, BOT, TOKEN = "T0123ABCD", "B0456EFGH", "aBcDeFgHiJkLmNoPqRsTuVwX"
KEY = "syn_42_0123456789abcdef_stiri-slack"
HERE = FIXTURES / "slack"
ERRORS: dict[str, type[ShareError]] = {
    "EndpointDisabled": EndpointDisabled,
    "PermanentShareError": PermanentShareError,
    "TransientShareError": TransientShareError,
}


def fixture(name: str) -> dict[str, Any]:
    """A fixture file of this directory, parsed."""
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def hook_url(port: int) -> str:
    """An incoming-webhook URL of Slack's shape on the local port."""
    return f"http://127.0.0.1:{port}/services/{TEAM}/{BOT}/{TOKEN}"


def endpoint(url: str = "https://hooks.slack.com/services/T1/B1/x", **extra: Any) -> SlackEndpoint:
    """A Slack endpoint whose URL comes from ``${SLACK_HOOK}``."""
    data = {"name": "stiri-slack", "kind": "slack", "webhook_url": "${SLACK_HOOK}", **extra}
    ep = get_endpoint(endpoint_config(data, {"SLACK_HOOK": url}))
    assert isinstance(ep, SlackEndpoint)
    return ep


def section(payload: dict[str, Any]) -> dict[str, Any]:
    """The section block of ``payload``."""
    (block,) = [b for b in payload["blocks"] if b["type"] == "section"]
    return block


def test_request_and_result_match_the_documented_exchange(receiver: Receiver, article: ShareArticle) -> None:
    case = fixture("incoming_webhook.json")
    response = case["response"]
    receiver.respond(
        response["status"], response["body"].encode(), {"Content-Type": response["content_type"]}
    )
    ep = endpoint(hook_url(receiver.server.server_port))
    preview = ep.render(article)
    assert preview.payload == case["request"]["body"]

    result = ep.publish(preview, KEY)
    (got,) = receiver.requests
    assert got.method == case["request"]["method"]
    assert got.path == case["request"]["path"].format(team=TEAM, bot=BOT, token=TOKEN)
    assert got.headers["content-type"] == case["request"]["content_type"]
    assert json.loads(got.body) == case["request"]["body"]
    # Slack returns no id: the idempotency key stands for the post.
    assert (result.remote_id, result.remote_url) == (KEY, None)


def test_article_text_is_escaped_so_it_cannot_mention_or_link(article: ShareArticle) -> None:
    sneaky = replace(article, title="Q&A <!channel>", summary="Read <https://evil.example|this> & <@U123>")
    payload = endpoint().render(sneaky).payload
    text = section(payload)["text"]["text"]
    assert text.startswith("Read &lt;https://evil.example|this&gt; &amp; &lt;@U123&gt;\n")
    assert text.endswith(f"<{article.url}|Q&amp;A &lt;!channel&gt;>")
    assert payload["text"].startswith("Q&amp;A &lt;!channel&gt;: ")
    # plain_text is shown as written.
    assert payload["blocks"][0]["text"] == {"type": "plain_text", "text": "Q&A <!channel>", "emoji": True}


def test_the_url_in_the_template_becomes_the_titled_link(article: ShareArticle) -> None:
    payload = endpoint(template="{summary}\n\nMore: {url}").render(article).payload
    text = section(payload)["text"]["text"]
    assert text.endswith(f"More: <{article.url}|{article.title}>")
    assert text.count(article.url) == 1


def test_link_characters_that_would_end_it_are_encoded() -> None:
    assert link("https://x.example/a|b>c", "T > 1") == "<https://x.example/a%7Cb%3Ec|T &gt; 1>"
    assert section_text("", "https://x.example/", "") == "<https://x.example/|https://x.example/>"


def test_section_fits_3000_counting_escapes_and_the_link(article: ShareArticle) -> None:
    # Every "&" becomes "&amp;": the limit is on the text Slack receives, not on what it shows.
    noisy = replace(article, summary="Profit & pierderi <> " * 400)
    text = section(endpoint(summary_length=5000).render(noisy).payload)["text"]["text"]
    assert SECTION_LIMIT - 60 < len(text) <= SECTION_LIMIT
    assert text.endswith(f"<{article.url}|{article.title}>")


def test_header_is_cut_to_150_characters(article: ShareArticle) -> None:
    long = replace(article, title="Un titlu foarte lung " * 20)
    header = endpoint().render(long).payload["blocks"][0]
    assert header["type"] == "header"
    assert len(header["text"]["text"]) <= HEADER_LIMIT and header["text"]["text"].endswith("…")


def test_without_image_source_or_authors_the_blocks_are_left_out(article: ShareArticle) -> None:
    bare = replace(article, source="", authors=())
    payload = endpoint(image=False).render(bare).payload
    assert [b["type"] for b in payload["blocks"]] == ["header", "section"]
    assert "accessory" not in section(payload)
    assert escape("a&b<c>") == "a&amp;b&lt;c&gt;"


@pytest.mark.parametrize("case", fixture("errors.json")["cases"], ids=lambda c: c["name"])
def test_documented_errors_map_to_the_error_tree(
    receiver: Receiver, article: ShareArticle, case: dict[str, Any]
) -> None:
    receiver.respond(
        case["status"], case["body"].encode(), {"Content-Type": "text/html", **case.get("headers", {})}
    )
    ep = endpoint(hook_url(receiver.server.server_port))
    with pytest.raises(ERRORS[case["error"]]) as caught:
        ep.publish(ep.render(article), KEY)
    error = caught.value
    assert type(error) is ERRORS[case["error"]] and error.status == case["status"]
    assert case["body"] in str(error)
    if "retry_after" in case:
        assert isinstance(error, TransientShareError) and error.retry_after == case["retry_after"]
    assert TOKEN not in str(error)


def test_the_webhook_token_never_shows(
    receiver: Receiver, article: ShareArticle, closed_port_url: str
) -> None:
    ep = endpoint(hook_url(receiver.server.server_port))
    preview = ep.render(article)
    assert TOKEN not in json.dumps(preview.payload)
    closed = int(closed_port_url.split(":")[2].split("/")[0])
    down = endpoint(hook_url(closed))
    with pytest.raises(TransientShareError) as caught:
        down.publish(down.render(article), KEY)
    message = str(caught.value)
    assert "Max retries exceeded" in message and "***" in message and TOKEN not in message


def test_lookup_is_left_uncertain(article: ShareArticle) -> None:
    ep = endpoint()
    assert ep.idempotent is False
    with pytest.raises(NotImplementedError):
        ep.lookup(ep.render(article), KEY)
