"""Facebook endpoint: a link post on a Page's feed through the Graph API.

``POST {api}/{graph_version}/{page_id}/feed`` with ``message`` (the rendered text) and ``link``
(the article, which Facebook turns into a card), form-encoded; the Page access token travels in
the POST body, never in the URL, so it cannot end up in access logs. The answer is
``{"id": "<page-id>_<post-id>"}``.

Graph errors are ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`` and the
code decides (developers.facebook.com/docs/graph-api/guides/error-handling): 506 (duplicate post)
counts as sent; 190/102 and ``OAuthException`` without a known code (expired or revoked token), 3,
10 and 200-299 (missing permission) disable the endpoint; 1, 2 (temporary), 4, 17, 32, 341, 613
and 80001 (throttling) are transient; anything else (368 blocked for policy, 1609005 link
unreadable, 100 bad parameter) refuses this post. Not idempotent and no lookup by our key.
"""

from __future__ import annotations

from typing import Any

from config.model import FacebookEndpointConfig
from worker.errors import (
    DuplicatePost,
    EndpointDisabled,
    GraphTokenError,
    PermanentShareError,
    ShareError,
    TransientShareError,
    UncertainShare,
)
from worker.http import Answer
from worker.share.base import Endpoint, Preview, ShareArticle, ShareResult

POST_URL = "https://www.facebook.com/{id}"
MAX_RESPONSE_BYTES = 64 * 1024
# Seconds to wait after a throttling code when Facebook sends no header saying how long.
THROTTLE_WAIT = 600.0
TRANSIENT_CODES = frozenset({1, 2})
THROTTLE_CODES = frozenset({4, 17, 32, 341, 613, 80001})
AUTH_CODES = frozenset({102, 190})
PERMISSION_CODES = frozenset({3, 10, *range(200, 300)})
DUPLICATE_CODE = 506


def graph_error(answer: Answer) -> dict[str, Any] | None:
    """The ``error`` object of a Graph API answer, if it has one."""
    data = answer.json()
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def map_graph_error(endpoint: Endpoint, answer: Answer, what: str) -> ShareError | None:
    """The ShareError for a Graph API error body (shared with Threads, which uses the same codes)."""
    error = graph_error(answer)
    if error is None:
        return None
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    kind = str(error.get("type") or "")
    message = f"{endpoint.name}: {what}: HTTP {answer.status}: {error.get('message') or answer.text()}"
    message += f" (code {code}" + (f", subcode {subcode}" if subcode is not None else "") + ")"
    if code == DUPLICATE_CODE:
        return DuplicatePost(message, status=answer.status)
    if code in THROTTLE_CODES:
        wait = endpoint.quota_wait if endpoint.quota_wait is not None else THROTTLE_WAIT
        return TransientShareError(message, status=answer.status, retry_after=wait)
    if code in TRANSIENT_CODES or answer.status >= 500:
        return TransientShareError(message, status=answer.status, retry_after=endpoint.quota_wait)
    if code in AUTH_CODES or (code is None and kind == "OAuthException"):
        return GraphTokenError(message, status=answer.status)
    if code in PERMISSION_CODES:
        return EndpointDisabled(message, status=answer.status)
    return PermanentShareError(message, status=answer.status)


class FacebookEndpoint(Endpoint[FacebookEndpointConfig]):
    """Posts each article as a link post on one Facebook Page."""

    kind = "facebook"
    # The Page post ("message") limit.
    max_chars = 63_206

    @property
    def feed_url(self) -> str:
        """``{api}/{graph_version}/{page_id}/feed``."""
        config = self.config
        return f"{config.api.rstrip('/')}/{config.graph_version}/{config.page_id}/feed"

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The form fields of the feed post, without the token (added at publish time)."""
        return {"message": text, "link": self.share_url(article)}

    def error_for(self, answer: Answer) -> ShareError | None:
        """Map the Graph error codes (see the module docstring)."""
        return map_graph_error(self, answer, f"POST /{self.config.page_id}/feed")

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Post ``preview`` to the Page feed."""
        form = {**preview.payload, "access_token": self.config.page_access_token.get_secret_value()}
        try:
            answer = self.send(
                "POST",
                self.feed_url,
                what=f"POST /{self.config.page_id}/feed",
                data=form,
                headers={"Accept": "application/json"},
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except DuplicatePost:
            return ShareResult(remote_id="", remote_url=None, duplicate=True)
        data = answer.json()
        post_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(post_id, str) or not post_id:
            raise UncertainShare(
                self.redact(f"{self.name}: Facebook answered {answer.status} without a post id")
            )
        return ShareResult(remote_id=post_id, remote_url=POST_URL.format(id=post_id))
