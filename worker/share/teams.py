"""Microsoft Teams endpoint: post each article as an Adaptive Card through a Workflows webhook.

``POST <webhook_url>`` (the URL of a "Post to a channel when a webhook request is received"
workflow) with ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <card>}]}``. The card
(schema version 1.4) holds the title (a bold, wrapping ``TextBlock``), the lead image, the rendered
template as a wrapping ``TextBlock``, a ``FactSet`` with source, authors and date, and an
``Action.OpenUrl`` "Read the story". The workflow answers ``202 Accepted``, with no id; Teams
takes at most 28 KB per message, so the card is checked against that before it is sent.

Errors come from Power Automate as ``{"error": {"code", "message"}}``: a trigger turned off
(``WorkflowTriggerIsNotEnabled``), a deleted workflow (404) and 401/403 disable the endpoint;
other 400s refuse the post; 429 (``Retry-After``) and 5xx are transient. The webhook URL carries
its signature (``sig=``), so it and its parts are kept out of every message. Retired Office 365
connector URLs are refused by the config. The workflow cannot find a post again: ``lookup``
stays uncertain.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from config.model import TeamsEndpointConfig
from worker.errors import EndpointDisabled, PermanentShareError, ShareError
from worker.http import Answer, Outcome
from worker.share.base import (
    Endpoint,
    Preview,
    ShareArticle,
    ShareResult,
    check_idempotency_key,
    shorten,
)

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.4"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
ACTION_TITLE = "Read the story"
TEXT_LIMIT = 3000
TITLE_LIMIT = 300
MAX_MESSAGE_BYTES = 28 * 1024
MAX_RESPONSE_BYTES = 64 * 1024
# Power Automate's codes for a workflow that exists but will not run until its owner acts.
DISABLING_CODES = frozenset({"WorkflowTriggerIsNotEnabled", "WorkflowNotFound", "WorkflowTriggerNotFound"})


def _when(moment: datetime) -> str:
    """``moment`` for readers, in UTC (``2024-05-01 09:30 UTC``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def encode_body(payload: dict[str, Any]) -> bytes:
    """``payload`` as it goes on the wire (compact UTF-8 JSON)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class TeamsEndpoint(Endpoint[TeamsEndpointConfig]):
    """Posts each article to the Teams channel behind the Workflows webhook ``config.webhook_url``."""

    kind = "teams"
    max_chars = TEXT_LIMIT

    def card(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The Adaptive Card: title, image, text, facts and the link to the story."""
        title = shorten(article.title.strip(), TITLE_LIMIT)
        body: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "text": title,
                "weight": "Bolder",
                "size": "Large",
                "wrap": True,
            }
        ]
        if self.config.image and article.image:
            body.append({"type": "Image", "url": article.image, "altText": title, "size": "Stretch"})
        if text:
            body.append({"type": "TextBlock", "text": text, "wrap": True})
        facts = [
            {"title": name, "value": value}
            for name, value in (
                ("Source", article.source.strip()),
                ("By", ", ".join(a.strip() for a in article.authors if a.strip())),
                ("Published", _when(article.published) if article.published else ""),
            )
            if value
        ]
        if facts:
            body.append({"type": "FactSet", "facts": facts})
        return {
            "$schema": CARD_SCHEMA,
            "type": "AdaptiveCard",
            "version": CARD_VERSION,
            "body": body,
            "actions": [{"type": "Action.OpenUrl", "title": ACTION_TITLE, "url": self.share_url(article)}],
        }

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The Workflows message: one Adaptive Card attachment; over 28 KB is a PermanentShareError."""
        payload = {
            "type": "message",
            "attachments": [
                {"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": self.card(article, text)}
            ],
        }
        size = len(encode_body(payload))
        if size > MAX_MESSAGE_BYTES:
            raise PermanentShareError(
                f"{self.name}: the card is {size} bytes, over Teams' {MAX_MESSAGE_BYTES} bytes per message"
            )
        return payload

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """POST the card; ``202 Accepted`` (any 2xx) is success, with the key as the remote id."""
        check_idempotency_key(idempotency_key)
        self.send(
            "POST",
            self.config.webhook_url.get_secret_value(),
            what="workflow webhook",
            data=encode_body(preview.payload),
            headers={"Content-Type": "application/json"},
            max_bytes=MAX_RESPONSE_BYTES,
        )
        return ShareResult(remote_id=idempotency_key)

    def error_for(self, answer: Answer) -> ShareError | None:
        """Map Power Automate's ``error.code`` to the error tree (a disabled trigger disables us)."""
        data = answer.json()
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict) or answer.status == 429 or answer.status >= 500:
            return None
        code = str(error.get("code") or "")
        message = f"{self.name}: Teams workflow: HTTP {answer.status}: {code}: {error.get('message') or ''}"
        message = message.rstrip(": ")
        if code in DISABLING_CODES or answer.outcome in (Outcome.AUTH, Outcome.GONE):
            return EndpointDisabled(message, status=answer.status)
        if 400 <= answer.status < 500:
            return PermanentShareError(message, status=answer.status)
        return None
