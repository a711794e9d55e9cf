"""Webhook endpoint: POST the article event as JSON signed per the Standard Webhooks spec.

Headers: ``webhook-id`` (the idempotency key, so receivers can drop a redelivery),
``webhook-timestamp`` (unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">``. The secret is ``whsec_<base64>`` or, without that prefix, raw text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

from config.model import WebhookEndpointConfig
from worker.errors import EndpointDisabled
from worker.share.base import Endpoint, Preview, ShareResult, check_idempotency_key

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 200


def signing_key(secret: str) -> bytes:
    """The HMAC key for ``secret``: base64-decoded after ``whsec_``, else its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :].strip()
        # Some providers hand out unpadded base64.
        encoded += "=" * (-len(encoded) % 4)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be followed by base64") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for ``body`` sent as ``msg_id`` at ``timestamp``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def encode_body(payload: dict[str, Any]) -> bytes:
    """Serialize ``payload`` exactly as it goes on the wire (compact UTF-8 JSON)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookEndpoint(Endpoint[WebhookEndpointConfig]):
    """POSTs each article as a signed ``article.published`` event to ``config.url``.

    Idempotent: a redelivery carries the same ``webhook-id``, which receivers deduplicate on.
    """

    kind = "webhook"
    idempotent = True

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Send ``preview.payload``; 2xx is success, 408/429/5xx and network errors are transient."""
        msg_id = check_idempotency_key(idempotency_key)
        config = self.config
        try:
            key = signing_key(config.secret.get_secret_value())
        except ValueError as exc:
            raise EndpointDisabled(f"{self.name}: {exc}") from None
        body = encode_body(preview.payload)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, msg_id, timestamp, body),
        }
        # Redirects are not followed (a POST would turn into a GET without the body): they disable.
        answer = self.send(
            "POST",
            config.url,
            what=f"POST {config.url}",
            data=body,
            headers=headers,
            max_bytes=MAX_RESPONSE_BYTES,
        )
        remote_id, remote_url = msg_id, None
        data = answer.json()
        if isinstance(data, dict):
            if isinstance(data.get("id"), str | int) and not isinstance(data.get("id"), bool):
                remote_id = str(data["id"]) or msg_id
            if isinstance(data.get("url"), str) and data["url"].startswith(("http://", "https://")):
                remote_url = data["url"]
        return ShareResult(remote_id=remote_id, remote_url=remote_url)
