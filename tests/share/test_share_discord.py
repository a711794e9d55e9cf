"""Contract tests of the Discord endpoint, from documented Execute Webhook payloads.

No Discord server can run here, so these are contract tests: the ``receiver`` (a real HTTP
server on 127.0.0.1) stands in for ``discord.com/api/webhooks/<id>/<token>`` and answers with the
documented response bodies stored in ``tests/fixtures/share/discord/`` (each file names its
source). The tests assert the exact request the endpoint sends (method, path and query, headers,
JSON body) against the documented shape, and that each documented error answer maps to the
right error class.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from config.model import ConfigError
from worker.errors import (
    EndpointDisabled,
    PermanentShareError,
    ShareError,
    TransientShareError,
    UncertainShare,
)
from worker.share import ShareArticle, get_endpoint
from worker.share.base import secret_forms
from worker.share.discord import (
    AUTHOR_LIMIT,
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FOOTER_LIMIT,
    TITLE_LIMIT,
    DiscordEndpoint,
    field_errors,
)

from .conftest import FIXTURES, Receiver, endpoint_config

WEBHOOK_ID = "1235619982417838120"
# The shape of a webhook token (serenity's documentation example).
TOKEN = "ig5AO-wdVWpCBtUUMxmgsWryqgsW3DChbKYOINftJ4DCrUbnkedoYZD0VOH1QLr-S3sV"
KEY = "syn_42_0123456789abcdef_stiri-discord"
HERE = FIXTURES / "discord"
ERRORS: dict[str, type[ShareError]] = {
    "EndpointDisabled": EndpointDisabled,
    "PermanentShareError": PermanentShareError,
    "TransientShareError": TransientShareError,
}


def fixture(name: str) -> dict[str, Any]:
    """A fixture file of this directory, parsed."""
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def hook_url(port: int, query: str = "") -> str:
    """A webhook URL of Discord's shape on the local port."""
    return f"http://127.0.0.1:{port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}{query}"


def endpoint(url: str, **extra: Any) -> DiscordEndpoint:
    """A Discord endpoint with the golden identity and colour, its URL from ``${DISCORD_HOOK}``."""
    data = {
        "name": "stiri-discord",
        "kind": "discord",
        "webhook_url": "${DISCORD_HOOK}",
        "username": "Știri RO",
        "avatar_url": "https://stiri.example.ro/logo.png",
        "color": 0x1F8B4C,
        **extra,
    }
    ep = get_endpoint(endpoint_config(data, {"DISCORD_HOOK": url}))
    assert isinstance(ep, DiscordEndpoint)
    return ep


def port(receiver: Receiver) -> int:
    """The receiver's port."""
    return int(receiver.server.server_port)


def test_request_and_result_match_the_documented_exchange(receiver: Receiver, article: ShareArticle) -> None:
    case = fixture("execute_webhook.json")
    receiver.respond(case["response"]["status"], case["response"]["body"])
    ep = endpoint(hook_url(port(receiver)))
    preview = ep.render(article)
    assert preview.payload == case["request"]["body"]

    result = ep.publish(preview, KEY)
    (got,) = receiver.requests
    assert got.method == case["request"]["method"]
    assert got.path == case["request"]["path"].format(webhook_id=WEBHOOK_ID, token=TOKEN)
    assert got.headers["content-type"] == case["request"]["content_type"]
    assert json.loads(got.body) == case["request"]["body"]
    assert [result.remote_id, result.remote_url] == list(case["result"].values())


def test_thread_id_in_the_webhook_url_is_kept(receiver: Receiver, article: ShareArticle) -> None:
    receiver.respond(200, fixture("execute_webhook.json")["response"]["body"])
    ep = endpoint(hook_url(port(receiver), "?thread_id=1104012475338702999"))
    ep.publish(ep.render(article), KEY)
    assert receiver.requests[0].path.endswith(f"/{TOKEN}?thread_id=1104012475338702999&wait=true")


def test_article_text_cannot_ping_anyone(article: ShareArticle) -> None:
    loud = replace(article, title="@everyone look: <@&123> and @here", summary="@everyone again")
    payload = endpoint("https://discord.com/api/webhooks/1/x").render(loud).payload
    assert payload["allowed_mentions"] == {"parse": []}
    assert payload["content"].startswith("@everyone look")


def test_links_in_content_do_not_unfurl_beside_the_embed(article: ShareArticle) -> None:
    ep = endpoint("https://discord.com/api/webhooks/1/x", template="{title} {url} (<{url}>)")
    content = ep.render(article).payload["content"]
    assert content == f"{article.title} <{article.url}> (<{article.url}>)"


def test_content_fits_2000_counting_the_link_brackets(article: ShareArticle) -> None:
    wordy = replace(article, summary="Cuvinte multe despre bursă. " * 200)
    ep = endpoint(
        "https://discord.com/api/webhooks/1/x", template="{title}\n{summary}\n{url}", summary_length=5000
    )
    content = ep.render(wordy).payload["content"]
    assert CONTENT_LIMIT - 30 < len(content) <= CONTENT_LIMIT
    assert content.endswith(f"\n<{article.url}>")


def test_embed_fields_and_their_total_stay_within_limits(article: ShareArticle) -> None:
    huge = replace(
        article,
        title="Titlu " * 100,
        summary="Rezumat lung. " * 700,
        authors=tuple(f"Autor Numărul {i}" for i in range(40)),
        source="sursa-" * 500,
    )
    (embed,) = endpoint("https://discord.com/api/webhooks/1/x").render(huge).payload["embeds"]
    assert len(embed["title"]) <= TITLE_LIMIT and embed["title"].endswith("…")
    assert len(embed["author"]["name"]) <= AUTHOR_LIMIT
    assert len(embed["footer"]["text"]) <= FOOTER_LIMIT
    assert len(embed["description"]) <= DESCRIPTION_LIMIT
    total = sum(len(t) for t in (embed["title"], embed["description"], embed["author"]["name"]))
    assert total + len(embed["footer"]["text"]) <= EMBED_TOTAL_LIMIT


def test_no_image_no_author_no_colour_leaves_the_fields_out(article: ShareArticle) -> None:
    bare = replace(article, authors=(), published=None)
    ep = endpoint(
        "https://discord.com/api/webhooks/1/x", image=False, color=None, username=None, avatar_url=None
    )
    payload = ep.render(bare).payload
    assert set(payload) == {"content", "embeds", "allowed_mentions"}
    assert set(payload["embeds"][0]) == {"title", "url", "description", "footer"}


@pytest.mark.parametrize("case", fixture("errors.json")["cases"], ids=lambda c: c["name"])
def test_documented_errors_map_to_the_error_tree(
    receiver: Receiver, article: ShareArticle, case: dict[str, Any]
) -> None:
    body = case["body"].encode() if isinstance(case["body"], str) else case["body"]
    receiver.respond(case["status"], body, headers=case.get("headers"))
    ep = endpoint(hook_url(port(receiver)))
    with pytest.raises(ERRORS[case["error"]]) as caught:
        ep.publish(ep.render(article), KEY)
    error = caught.value
    assert type(error) is ERRORS[case["error"]] and error.status == case["status"]
    if "retry_after" in case:
        assert isinstance(error, TransientShareError) and error.retry_after == case["retry_after"]
    if "says" in case:
        assert case["says"] in str(error)
    assert TOKEN not in str(error)


def test_field_errors_are_flattened_to_paths() -> None:
    errors = {
        "content": {
            "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]
        },
        "embeds": {"0": {"description": {"_errors": [{"message": "Must be 4096 or fewer in length."}]}}},
    }
    assert field_errors(errors) == [
        "content: Must be 2000 or fewer in length.",
        "embeds.0.description: Must be 4096 or fewer in length.",
    ]


def test_an_answer_without_the_message_is_uncertain(receiver: Receiver, article: ShareArticle) -> None:
    receiver.respond(204)
    ep = endpoint(hook_url(port(receiver)))
    with pytest.raises(UncertainShare):
        ep.publish(ep.render(article), KEY)


def test_the_webhook_token_never_shows(
    receiver: Receiver, article: ShareArticle, closed_port_url: str
) -> None:
    ep = endpoint(hook_url(port(receiver)))
    preview = ep.render(article)
    assert TOKEN not in json.dumps(preview.payload) and WEBHOOK_ID not in json.dumps(preview.payload)
    receiver.respond(200, fixture("execute_webhook.json")["response"]["body"])
    assert TOKEN not in repr(ep.publish(preview, KEY))

    # urllib3 quotes only the path and query of a failed URL ("url: /api/webhooks/<id>/<token>?wait=true"),
    # which the full-URL redaction alone would miss.
    closed = int(closed_port_url.split(":")[2].split("/")[0])
    down = endpoint(hook_url(closed))
    with pytest.raises(TransientShareError) as caught:
        down.publish(down.render(article), KEY)
    message = str(caught.value)
    assert "Max retries exceeded" in message and "***" in message
    assert TOKEN not in message and WEBHOOK_ID not in message


def test_url_secrets_cover_the_forms_a_url_is_quoted_in() -> None:
    url = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{TOKEN}"
    secrets = secret_forms(url)
    assert url in secrets and f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}" in secrets and TOKEN in secrets
    # Short words of the path are not secrets: messages keep them readable.
    assert "api" not in secrets and "webhooks" not in secrets


def test_colour_must_be_an_rgb_value() -> None:
    with pytest.raises(ConfigError, match="color"):
        endpoint("https://discord.com/api/webhooks/1/x", color=0x1000000)


def test_lookup_is_left_uncertain(article: ShareArticle) -> None:
    ep = endpoint("https://discord.com/api/webhooks/1/x")
    assert ep.idempotent is False
    with pytest.raises(NotImplementedError):
        ep.lookup(ep.render(article), KEY)
