"""Discord endpoint: execute a channel webhook with the post text and one rich embed.

``POST <webhook_url>?wait=true`` (so Discord answers with the created message, whose ``id`` is the
remote id) with ``content`` (the rendered template, at most 2,000 characters), an optional
``username`` and ``avatar_url``, and one embed: ``title`` (256), ``description`` (the summary,
4,096), ``url``, ``timestamp``, ``color``, ``author.name`` (256), ``footer.text`` (the source,
2,048) and ``image.url``, within Discord's 6,000 characters across the embed's texts.
``allowed_mentions: {"parse": []}`` keeps article text from pinging ``@everyone`` or anyone else,
and links in ``content`` are wrapped in ``<…>`` so Discord does not add a second preview card
beside our embed.

Errors: JSON ``code`` 10015 (Unknown Webhook), 401, 403 and 404 disable the endpoint; 429 is
transient (JSON ``retry_after`` in float seconds, ``Retry-After``, ``X-RateLimit-Reset-After``);
400 with field ``errors`` refuses the post, naming the fields. The webhook URL holds its token,
so it (and each part of it that an HTTP error could quote) is kept out of every message.
Discord cannot find a webhook post again without its id: ``lookup`` stays uncertain.
"""

from __future__ import annotations

import json
from typing import Any

from config.model import DiscordEndpointConfig
from worker.errors import EndpointDisabled, PermanentShareError, ShareError, UncertainShare
from worker.http import Answer
from worker.share.base import (
    Endpoint,
    Preview,
    ShareArticle,
    ShareResult,
    check_idempotency_key,
    iso_utc,
    shorten,
)
from worker.share.text import find_urls

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
AUTHOR_LIMIT = 256
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
UNKNOWN_WEBHOOK = 10015
MAX_RESPONSE_BYTES = 256 * 1024
# Parts of a webhook URL shorter than this are words such as "api" or "webhooks", not secrets.


def field_errors(errors: Any, path: str = "") -> list[str]:
    """Discord's nested ``errors`` object flattened to ``"embeds.0.title: Must be 256 or fewer..."``."""
    out: list[str] = []
    if not isinstance(errors, dict):
        return out
    for key, value in errors.items():
        if key == "_errors" and isinstance(value, list):
            messages = [str(e.get("message", e.get("code", ""))) for e in value if isinstance(e, dict)]
            out.append(f"{path or '(body)'}: {'; '.join(messages)}")
        else:
            out.extend(field_errors(value, f"{path}.{key}" if path else str(key)))
    return out


def _suppress_embeds(text: str) -> str:
    """Wrap each bare link of ``text`` in ``<…>``, which tells Discord not to preview it."""
    out, pos = [], 0
    for start, end in find_urls(text):
        out.append(text[pos:start])
        already = start > 0 and text[start - 1] == "<" and text[end : end + 1] == ">"
        out.append(text[start:end] if already else f"<{text[start:end]}>")
        pos = end
    out.append(text[pos:])
    return "".join(out)


class DiscordEndpoint(Endpoint[DiscordEndpointConfig]):
    """Posts each article through the Discord channel webhook ``config.webhook_url``."""

    kind = "discord"
    max_chars = CONTENT_LIMIT

    def text_length(self, text: str) -> int:
        """The length of ``content`` as sent: code points, with the ``<…>`` added around each link."""
        return len(_suppress_embeds(text))

    def embed(self, article: ShareArticle) -> dict[str, Any]:
        """The article's rich embed, each text within its limit and all of them within 6,000."""
        title = shorten(article.title.strip(), TITLE_LIMIT)
        author = shorten(", ".join(a.strip() for a in article.authors if a.strip()), AUTHOR_LIMIT)
        footer = shorten(article.source.strip(), FOOTER_LIMIT)
        room = EMBED_TOTAL_LIMIT - len(title) - len(author) - len(footer)
        description = shorten(article.summary.strip(), max(0, min(DESCRIPTION_LIMIT, room)))
        embed: dict[str, Any] = {"title": title, "url": self.share_url(article)}
        if description:
            embed["description"] = description
        if article.published:
            embed["timestamp"] = iso_utc(article.published)
        if self.config.color is not None:
            embed["color"] = self.config.color
        if author:
            embed["author"] = {"name": author}
        if footer:
            embed["footer"] = {"text": footer}
        if self.config.image and article.image:
            embed["image"] = {"url": article.image}
        return embed

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The Execute Webhook body: ``content``, the embed, the identity overrides, no mentions."""
        payload: dict[str, Any] = {"content": _suppress_embeds(text)}
        if self.config.username:
            payload["username"] = self.config.username
        if self.config.avatar_url:
            payload["avatar_url"] = self.config.avatar_url
        payload["embeds"] = [self.embed(article)]
        payload["allowed_mentions"] = {"parse": []}
        return payload

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Execute the webhook with ``wait=true``; the created message's id is the remote id."""
        check_idempotency_key(idempotency_key)
        body = json.dumps(preview.payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        answer = self.send(
            "POST",
            self.config.webhook_url.get_secret_value(),
            what="execute webhook",
            params={"wait": "true"},
            data=body,
            headers={"Content-Type": "application/json"},
            max_bytes=MAX_RESPONSE_BYTES,
        )
        data = answer.json()
        message_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(message_id, str) or not message_id:
            # Without the message Discord does not confirm it saved the post.
            raise UncertainShare(
                f"{self.name}: Discord answered HTTP {answer.status} without the created message",
                status=answer.status,
            )
        assert isinstance(data, dict)
        guild, channel = data.get("guild_id"), data.get("channel_id")
        remote_url = None
        if isinstance(guild, str) and guild and isinstance(channel, str) and channel:
            remote_url = f"https://discord.com/channels/{guild}/{channel}/{message_id}"
        return ShareResult(remote_id=message_id, remote_url=remote_url)

    def error_for(self, answer: Answer) -> ShareError | None:
        """Unknown Webhook disables; a 400 with field ``errors`` refuses the post, naming the fields."""
        data = answer.json()
        if not isinstance(data, dict):
            return None
        message = f"{self.name}: Discord: {data.get('message') or f'HTTP {answer.status}'}"
        if data.get("code") == UNKNOWN_WEBHOOK:
            return EndpointDisabled(message, status=answer.status)
        if answer.status == 400:
            problems = field_errors(data.get("errors"))
            if problems:
                message += " (" + "; ".join(problems) + ")"
            return PermanentShareError(message, status=answer.status)
        return None
