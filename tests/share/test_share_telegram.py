"""Contract tests of the Telegram endpoint, from documented Bot API payloads.

No Telegram Bot API server can run here, so these are contract tests: a real HTTP server on
127.0.0.1 stands in for ``api.telegram.org`` and answers with the documented response bodies
stored in ``tests/fixtures/share/telegram/`` (each file names its source). The tests assert the
exact request the endpoint sends (method, path with the bot token, headers, JSON body) against the
documented shape, and that each documented error answer maps to the right error class.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from worker.errors import EndpointDisabled, PermanentShareError, ShareError, TransientShareError
from worker.share import MemoryTokenStore, ShareArticle, get_endpoint
from worker.share.telegram import CAPTION_LIMIT, MESSAGE_LIMIT, TelegramEndpoint, to_html
from worker.share.text import utf16_length

from .conftest import FIXTURES, endpoint_config

TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"  # the Bot API docs' example token
KEY = "syn_42_0123456789abcdef_stiri-telegram"
HERE = FIXTURES / "telegram"
ERRORS: dict[str, type[ShareError]] = {
    "EndpointDisabled": EndpointDisabled,
    "PermanentShareError": PermanentShareError,
    "TransientShareError": TransientShareError,
}


def fixture(name: str) -> dict[str, Any]:
    """A fixture file of this directory, parsed."""
    return json.loads((HERE / name).read_text(encoding="utf-8"))


class BotApi:
    """A stand-in Bot API on 127.0.0.1: records each request, answers from a script in order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.script: list[tuple[int, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                api.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, answer = api.script.pop(0) if len(api.script) > 1 else api.script[0]
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True

    def answer(self, *replies: tuple[int, Any]) -> None:
        """Answer the next requests with ``replies`` in turn; the last one repeats."""
        self.script = list(replies)

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far."""
        return [json.loads(body) for _, _, body in self.requests]


@pytest.fixture
def api() -> Iterator[BotApi]:
    """A running stand-in Bot API."""
    server = BotApi()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def endpoint(api_url: str, tokens: MemoryTokenStore | None = None, **extra: Any) -> TelegramEndpoint:
    """A Telegram endpoint posting to ``@stiri_ro`` through ``api_url`` with the docs' token."""
    data = {
        "name": "stiri-telegram",
        "kind": "telegram",
        "api": api_url,
        "bot_token": "${TG_TOKEN}",
        "chat_id": "@stiri_ro",
        **extra,
    }
    ep = get_endpoint(endpoint_config(data, {"TG_TOKEN": TOKEN}), tokens=tokens)
    assert isinstance(ep, TelegramEndpoint)
    return ep


@pytest.mark.parametrize("name", ["sendPhoto.json", "sendMessage.json"])
def test_request_and_result_match_the_documented_exchange(
    api: BotApi, article: ShareArticle, name: str
) -> None:
    case = fixture(name)
    api.answer((case["response"]["status"], case["response"]["body"]))
    ep = endpoint(api.url, image=name == "sendPhoto.json")
    preview = ep.render(article)
    assert preview.payload == case["request"]["body"]

    result = ep.publish(preview, KEY)
    ((path, headers, body),) = api.requests
    assert path == case["request"]["path"].format(token=TOKEN)
    assert headers["content-type"] == case["request"]["content_type"]
    assert json.loads(body) == case["request"]["body"]
    assert (result.remote_id, result.remote_url) == (
        case["result"]["remote_id"],
        case["result"]["remote_url"],
    )
    assert preview.image == (article.image if name == "sendPhoto.json" else None)


def test_html_escapes_article_text_and_bolds_the_title() -> None:
    assert to_html("A <b> & C\n\nx < y", "A <b> & C") == "<b>A &lt;b&gt; &amp; C</b>\n\nx &lt; y"
    # A title cut by render_text ends its line with an ellipsis: the cut title is bolded.
    assert to_html("Bursa de la…\n\nhttps://x.example/a", "Bursa de la București") == (
        "<b>Bursa de la…</b>\n\nhttps://x.example/a"
    )
    assert to_html("no title here", "Other") == "no title here"


def test_markup_is_not_counted_but_utf16_units_are(api: BotApi, article: ShareArticle) -> None:
    # Emoji outside the BMP are two UTF-16 units each; ampersands become &amp; (one unit once parsed).
    long = replace(article, summary="Știri 📈 & <piață> " * 400, image=None)
    ep = endpoint(api.url, summary_length=5000)
    preview = ep.render(long)
    assert utf16_length(preview.text) <= MESSAGE_LIMIT < utf16_length(preview.text) + 22
    assert len(preview.payload["text"]) > MESSAGE_LIMIT  # the entities are longer than what they stand for
    assert preview.payload["text"].endswith(article.url) and "&amp; &lt;piață&gt;" in preview.payload["text"]


def test_text_too_long_for_a_caption_goes_as_a_message_with_preview(
    api: BotApi, article: ShareArticle
) -> None:
    body = fixture("sendMessage.json")["response"]["body"]
    api.answer((200, body))
    wordy = replace(article, summary="Cuvinte multe despre bursă. " * 60)
    ep = endpoint(api.url, summary_length=5000)
    preview = ep.render(wordy)
    assert utf16_length(preview.text) > CAPTION_LIMIT
    assert "photo" not in preview.payload and preview.image is None
    assert preview.payload["link_preview_options"] == {"url": article.url, "prefer_large_media": True}
    ep.publish(preview, KEY)
    assert api.requests[0][0] == f"/bot{TOKEN}/sendMessage"


def test_photo_telegram_cannot_fetch_falls_back_to_the_message(api: BotApi, article: ShareArticle) -> None:
    refused = fixture("photo_refused.json")["response"]
    sent = fixture("sendMessage.json")["response"]
    api.answer((refused["status"], refused["body"]), (sent["status"], sent["body"]))
    ep = endpoint(api.url)
    preview = ep.render(article)
    result = ep.publish(preview, KEY)
    assert [path for path, _, _ in api.requests] == [f"/bot{TOKEN}/sendPhoto", f"/bot{TOKEN}/sendMessage"]
    photo, message = api.bodies()
    assert message["text"] == photo["caption"] and message["parse_mode"] == "HTML"
    assert message["link_preview_options"]["url"] == article.url
    assert result.remote_id == "4212"


def test_supergroup_migration_is_stored_and_retried_once(api: BotApi, article: ShareArticle) -> None:
    migrate = fixture("migrate.json")["response"]
    sent = fixture("sendMessage.json")["response"]
    new_id = migrate["body"]["parameters"]["migrate_to_chat_id"]
    tokens = MemoryTokenStore()
    api.answer((migrate["status"], migrate["body"]), (sent["status"], sent["body"]))
    ep = endpoint(api.url, tokens=tokens, chat_id="-4012345678", image=False)
    ep.publish(ep.render(article), KEY)

    first, second = api.bodies()
    assert first["chat_id"] == -4012345678 and second["chat_id"] == new_id
    assert tokens.load("stiri-telegram") == {"chat_id": new_id, "migrated_from": "-4012345678"}

    # From then on the stored id wins over the config, in previews and posts.
    api.requests.clear()
    later = endpoint(api.url, tokens=tokens, chat_id="-4012345678", image=False)
    preview = later.render(article)
    assert preview.payload["chat_id"] == new_id
    later.publish(preview, KEY)
    assert api.bodies()[0]["chat_id"] == new_id
    # An operator who points the endpoint at another chat is obeyed.
    assert endpoint(api.url, tokens=tokens, chat_id="@other_channel").chat_id() == "@other_channel"


def test_a_second_migration_in_a_row_is_permanent(api: BotApi, article: ShareArticle) -> None:
    migrate = fixture("migrate.json")["response"]
    api.answer((migrate["status"], migrate["body"]))
    ep = endpoint(api.url, chat_id="-4012345678", image=False)
    with pytest.raises(PermanentShareError) as caught:
        ep.publish(ep.render(article), KEY)
    assert type(caught.value) is PermanentShareError and len(api.requests) == 2


@pytest.mark.parametrize("case", fixture("errors.json")["cases"], ids=lambda c: c["name"])
def test_documented_errors_map_to_the_error_tree(
    api: BotApi, article: ShareArticle, case: dict[str, Any]
) -> None:
    api.answer((case["status"], case["body"]))
    ep = endpoint(api.url, image=False)
    with pytest.raises(ERRORS[case["error"]]) as caught:
        ep.publish(ep.render(article), KEY)
    error = caught.value
    assert type(error) is ERRORS[case["error"]]
    assert len(api.requests) == 1, "no error is retried on the spot"
    assert error.status == case["status"]
    if "retry_after" in case:
        assert isinstance(error, TransientShareError) and error.retry_after == case["retry_after"]
    if isinstance(case["body"], dict):
        assert case["body"]["description"] in str(error)
    assert TOKEN not in str(error)


def test_the_bot_token_never_shows(api: BotApi, article: ShareArticle, closed_port_url: str) -> None:
    ep = endpoint(api.url)
    preview = ep.render(article)
    assert TOKEN not in json.dumps(preview.payload) and TOKEN not in preview.text
    api.answer((200, fixture("sendPhoto.json")["response"]["body"]))
    result = ep.publish(preview, KEY)
    assert TOKEN not in repr(result)

    # The HTTP layer quotes the URL, token included, when the connection fails: it is redacted.
    down = endpoint(closed_port_url.rsplit("/", 1)[0])
    with pytest.raises(TransientShareError) as caught:
        down.publish(down.render(article), KEY)
    assert "/bot" in str(caught.value) and TOKEN not in str(caught.value)
    assert "***" in str(caught.value)


def test_numeric_chat_ids_are_sent_as_integers_and_link_by_username(
    api: BotApi, article: ShareArticle
) -> None:
    body = fixture("sendMessage.json")["response"]["body"]
    api.answer((200, body))
    ep = endpoint(api.url, chat_id="-1001234567890", image=False, disable_notification=True)
    result = ep.publish(ep.render(article), KEY)
    sent = api.bodies()[0]
    assert sent["chat_id"] == -1001234567890 and sent["disable_notification"] is True
    # The channel's public username comes back in the answer's chat.
    assert result.remote_url == "https://t.me/stiri_ro/4212"


def test_lookup_is_left_uncertain(api: BotApi, article: ShareArticle) -> None:
    ep = endpoint(api.url)
    assert ep.idempotent is False
    with pytest.raises(NotImplementedError):
        ep.lookup(ep.render(article), KEY)
