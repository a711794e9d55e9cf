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

import requests

from feeds.http import parse_retry_after
from worker.errors import PermanentShareError, TransientShareError
from worker.share.base import Endpoint, Preview, ShareResult, check_idempotency_key

USER_AGENT = "Syndicate"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 200
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


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


def _excerpt(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _read_limited(response: requests.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(8192):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:MAX_RESPONSE_BYTES]


class WebhookEndpoint(Endpoint):
    """POSTs each article as a signed ``article.published`` event to ``config.url``."""

    kind = "webhook"

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Send ``preview.payload``; 2xx is success, 408/429/5xx and network errors are transient."""
        msg_id = check_idempotency_key(idempotency_key)
        url = self.config.url
        if not url or self.config.secret is None:
            raise PermanentShareError(f"{self.name}: a webhook endpoint needs url and secret")
        try:
            key = signing_key(self.config.secret.get_secret_value())
        except ValueError as exc:
            raise PermanentShareError(f"{self.name}: {exc}") from None
        body = encode_body(preview.payload)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, msg_id, timestamp, body),
        }
        try:
            # Redirects are not followed: requests would turn the POST into a GET without the body.
            response = self.session.post(
                url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
            )
        except requests.Timeout as exc:
            raise TransientShareError(f"{self.name}: timed out after {self.timeout:g}s: {exc}") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransientShareError(f"{self.name}: cannot reach {url}: {exc}") from None
        except requests.RequestException as exc:
            raise PermanentShareError(f"{self.name}: cannot post to {url}: {exc}") from None
        with response:
            try:
                content = _read_limited(response)
            except requests.RequestException as exc:
                raise TransientShareError(f"{self.name}: reading the response failed: {exc}") from None
        return self._result(response, content, msg_id)

    def _result(self, response: requests.Response, content: bytes, msg_id: str) -> ShareResult:
        status = response.status_code
        if 200 <= status < 300:
            remote_id, remote_url = msg_id, None
            try:
                data = json.loads(content) if content.strip() else None
            except ValueError:
                data = None
            if isinstance(data, dict):
                if isinstance(data.get("id"), str | int) and not isinstance(data.get("id"), bool):
                    remote_id = str(data["id"]) or msg_id
                if isinstance(data.get("url"), str) and data["url"].startswith(("http://", "https://")):
                    remote_url = data["url"]
            return ShareResult(remote_id=remote_id, remote_url=remote_url)
        message = f"{self.name}: HTTP {status} from {self.config.url}"
        if content.strip():
            message += f": {_excerpt(content)}"
        if status in _TRANSIENT_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientShareError(message, status=status, retry_after=retry_after)
        if 300 <= status < 400:
            location = response.headers.get("Location")
            if location:
                message += f" (redirects to {location}; update the endpoint url)"
        raise PermanentShareError(message, status=status)
