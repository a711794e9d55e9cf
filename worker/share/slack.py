"""Slack endpoint: post each article through an incoming webhook as Block Kit blocks.

``POST <webhook_url>`` with ``text`` (the notification fallback), ``blocks`` — a ``header``
(the title as ``plain_text``, at most 150 characters), a ``section`` (the rendered template as
``mrkdwn``, at most 3,000 characters, with the link ``<url|title>`` and the lead image as an
``image`` accessory) and a ``context`` (source and authors) — and ``unfurl_links: false``, since
the blocks already show the story. Article text is escaped for mrkdwn (``&``, ``<``, ``>``), so it
can neither mention anyone nor make links of its own.

Slack answers ``ok`` as plain text, and errors as plain text too: ``no_service``, ``no_team``,
``team_disabled``, ``channel_not_found``, ``channel_is_archived``, ``invalid_token``,
``action_prohibited`` and 404/410 disable the endpoint (the webhook is gone or barred);
``invalid_payload`` and ``invalid_blocks`` refuse the post; 429 (``Retry-After``) is transient.
Slack returns no id and cannot find a webhook post again: ``lookup`` stays uncertain.
"""

from __future__ import annotations

import json
from typing import Any

from config.model import SlackEndpointConfig
from worker.errors import EndpointDisabled, PermanentShareError, ShareError
from worker.http import Answer
from worker.share.base import (
    Endpoint,
    Preview,
    ShareArticle,
    ShareResult,
    check_idempotency_key,
    render_text,
    shorten,
)

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
CONTEXT_LIMIT = 3000
ALT_TEXT_LIMIT = 2000
MAX_RESPONSE_BYTES = 64 * 1024
DISABLING_ERRORS = frozenset(
    {
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_not_found",
        "channel_is_archived",
        "invalid_token",
        "action_prohibited",
        "posting_to_general_channel_denied",
    }
)
REFUSING_ERRORS = frozenset(
    {"invalid_payload", "invalid_blocks", "invalid_blocks_format", "too_many_attachments", "user_not_found"}
)


def escape(text: str) -> str:
    """``text`` as literal mrkdwn: ``&``, ``<`` and ``>`` as the entities Slack asks for."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """A mrkdwn link ``<url|label>``; characters that would end it early are percent-encoded in the URL."""
    safe = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
    return f"<{safe}|{escape(label)}>"


def section_text(text: str, url: str, title: str) -> str:
    """The section's mrkdwn: ``text`` escaped, its link as ``<url|title>`` (appended if absent)."""
    anchor = link(url, title or url)
    if url and url in text:
        before, _, after = text.partition(url)
        return escape(before) + anchor + escape(after)
    escaped = escape(text)
    return f"{escaped}\n{anchor}" if escaped else anchor


class SlackEndpoint(Endpoint[SlackEndpointConfig]):
    """Posts each article to the channel of the Slack incoming webhook ``config.webhook_url``."""

    kind = "slack"
    max_chars = SECTION_LIMIT

    def render_text(self, article: ShareArticle) -> str:
        """The template filled so that the section's mrkdwn (escaped, with the link) fits 3,000."""
        url = self.share_url(article)
        title = shorten(article.title.strip(), HEADER_LIMIT)
        view = ShareArticle(**{**article.__dict__, "url": url})
        return render_text(
            self.config.template,
            view,
            SECTION_LIMIT,
            length=lambda text: len(section_text(text, url, title)),
            text=self.config.text,
            max_hashtags=self.config.max_hashtags,
            summary_length=self.config.summary_length,
        )

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The incoming-webhook body: fallback ``text``, header, section (with image), context."""
        url = self.share_url(article)
        title = shorten(article.title.strip(), HEADER_LIMIT)
        section: dict[str, Any] = {
            "type": "section",
            "text": {"type": "mrkdwn", "text": section_text(text, url, title)},
        }
        if self.config.image and article.image:
            section["accessory"] = {
                "type": "image",
                "image_url": article.image,
                "alt_text": shorten(article.title.strip(), ALT_TEXT_LIMIT) or "image",
            }
        blocks: list[dict[str, Any]] = []
        if title:
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}})
        blocks.append(section)
        context = [
            {"type": "mrkdwn", "text": escape(shorten(value, CONTEXT_LIMIT))}
            for value in (article.source.strip(), ", ".join(a.strip() for a in article.authors if a.strip()))
            if value
        ]
        if context:
            blocks.append({"type": "context", "elements": context})
        fallback = f"{escape(title)}: {url}" if title else url
        return {"text": fallback, "blocks": blocks, "unfurl_links": False}

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """POST the blocks; any 2xx (Slack says ``ok``) is success, with the key as the remote id."""
        check_idempotency_key(idempotency_key)
        body = json.dumps(preview.payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.send(
            "POST",
            self.config.webhook_url.get_secret_value(),
            what="incoming webhook",
            data=body,
            headers={"Content-Type": "application/json"},
            max_bytes=MAX_RESPONSE_BYTES,
        )
        return ShareResult(remote_id=idempotency_key)

    def error_for(self, answer: Answer) -> ShareError | None:
        """Map Slack's plain-text error (``no_service``, ``invalid_blocks``...) to the error tree."""
        if answer.status == 429 or answer.status >= 500:
            return None
        code = answer.body[:200].decode("utf-8", errors="replace").strip()
        message = f"{self.name}: Slack: HTTP {answer.status}: {code or 'no reason given'}"
        if code in DISABLING_ERRORS:
            return EndpointDisabled(message, status=answer.status)
        if code in REFUSING_ERRORS:
            return PermanentShareError(message, status=answer.status)
        return None
