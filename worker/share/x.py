"""X endpoint: ``POST {api}/2/tweets`` with a user-context OAuth 2.0 token.

The body is ``{"text": ...}``: X builds the link card from the URL in the text itself, and counts
the text with its weighted rule (:func:`~worker.share.text.x_length`, 280). The bearer token is a
user access token that expires after two hours; :mod:`worker.share.oauth` refreshes it with the
refresh token (``POST {api}/2/oauth2/token``) before it expires and once after a 401. X rotates
refresh tokens, so the config's refresh token is only the seed and the live one is in the token store.

Answers: 403 "duplicate content" means the same text is already on the account (it counts as sent);
429 waits until ``x-rate-limit-reset`` (or the 24-hour caps' reset); a 401 after a refresh or any
other 403 (app not enrolled, account locked) disables the endpoint. Posting is not idempotent and
X gives no way to look a post up by our key, so a lost answer becomes an uncertain share.
"""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

from config.model import XEndpointConfig
from worker.errors import (
    DuplicatePost,
    EndpointDisabled,
    ShareError,
    TransientShareError,
    UncertainShare,
)
from worker.http import Answer
from worker.share.base import Endpoint, Preview, ShareArticle, ShareResult
from worker.share.oauth import OAuthClient, RefreshingToken
from worker.share.text import x_length

STATUS_URL = "https://x.com/i/web/status/{id}"
MAX_RESPONSE_BYTES = 256 * 1024
# Reset headers X sends: the per-15-minute window and the 24-hour caps of the user and the app.
_RESET_HEADERS = (
    ("x-rate-limit-remaining", "x-rate-limit-reset"),
    ("x-user-limit-24hour-remaining", "x-user-limit-24hour-reset"),
    ("x-app-limit-24hour-remaining", "x-app-limit-24hour-reset"),
)


def problem_detail(answer: Answer) -> str:
    """The human part of an X error body (``detail``/``title``, or the first ``errors[].message``)."""
    data = answer.json()
    if not isinstance(data, dict):
        return answer.text()
    for key in ("detail", "title"):
        if isinstance(data.get(key), str) and data[key]:
            return str(data[key])
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message = errors[0].get("message") or errors[0].get("detail")
        if isinstance(message, str):
            return message
    return answer.text()


def x_retry_after(answer: Answer, now: float | None = None) -> float | None:
    """Seconds until X's exhausted quota resets, from its ``x-*-reset`` epoch headers."""
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in answer.headers.items()}
    delays: list[float] = []
    fallback: float | None = None
    for remaining_name, reset_name in _RESET_HEADERS:
        try:
            reset = float(lowered[reset_name])
        except (KeyError, ValueError):
            continue
        delay = max(0.0, reset - now)
        if reset_name == "x-rate-limit-reset":
            fallback = delay
        if lowered.get(remaining_name, "").strip() == "0":
            delays.append(delay)
    if delays:
        return max(delays)
    return fallback


class XEndpoint(Endpoint[XEndpointConfig]):
    """Posts the rendered text to one X account."""

    kind = "x"
    max_chars = 280

    @property
    def api(self) -> str:
        """The API base URL without a trailing slash."""
        return self.config.api.rstrip("/")

    @cached_property
    def oauth(self) -> RefreshingToken:
        """The self-refreshing user access token."""
        config = self.config
        secret = config.client_secret.get_secret_value() if config.client_secret else None
        return RefreshingToken(
            self,
            OAuthClient(f"{self.api}/2/oauth2/token", config.client_id, secret, basic_auth=True),
            access_token=config.access_token.get_secret_value() if config.access_token else None,
            refresh_token=config.refresh_token.get_secret_value(),
            setting=f"the refresh_token of endpoint {config.name!r}",
        )

    def text_length(self, text: str) -> int:
        """X's weighted length (URLs 23, CJK and emoji 2)."""
        return x_length(text)

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The ``POST /2/tweets`` body."""
        return {"text": text}

    def error_for(self, answer: Answer) -> ShareError | None:
        """Duplicate content, rate limits and X's 401/403 problem bodies."""
        detail = problem_detail(answer)
        message = f"{self.name}: POST /2/tweets: HTTP {answer.status}: {detail}"
        if answer.status == 403 and "duplicate content" in detail.lower():
            return DuplicatePost(message, status=403)
        if answer.status == 429:
            wait = x_retry_after(answer)
            return TransientShareError(
                message, status=429, retry_after=wait if wait is not None else self.quota_wait
            )
        if answer.status in (401, 403):
            return EndpointDisabled(message, status=answer.status)
        return None

    def _post(self, preview: Preview, token: str) -> Answer:
        return self.send(
            "POST",
            f"{self.api}/2/tweets",
            what="POST /2/tweets",
            json=preview.payload,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            max_bytes=MAX_RESPONSE_BYTES,
        )

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Post ``preview``; refresh the token once if X answers 401."""
        try:
            try:
                answer = self._post(preview, self.oauth.current())
            except EndpointDisabled as exc:
                # A 401 means the token was refused before anything was posted: safe to resend once.
                if exc.status != 401 or not self.oauth.can_refresh:
                    raise
                answer = self._post(preview, self.oauth.refresh())
        except DuplicatePost:
            return ShareResult(remote_id="", remote_url=None, duplicate=True)
        data = answer.json()
        post = data.get("data") if isinstance(data, dict) else None
        post_id = post.get("id") if isinstance(post, dict) else None
        if not isinstance(post_id, str | int) or isinstance(post_id, bool) or not str(post_id):
            raise UncertainShare(self.redact(f"{self.name}: X answered {answer.status} without a post id"))
        return ShareResult(remote_id=str(post_id), remote_url=STATUS_URL.format(id=post_id))
