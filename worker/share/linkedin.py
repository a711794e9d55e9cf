"""LinkedIn endpoint: an article post through the versioned Posts API (``POST {api}/rest/posts``).

Every call carries ``LinkedIn-Version: <config.version>`` and ``X-Restli-Protocol-Version: 2.0.0``.
The post is an article share: ``content.article`` with the link (``source``), title, description
and, when the lead image uploads, a ``thumbnail`` image URN (Images API ``initializeUpload``, then
a PUT of the bytes to the returned URL). LinkedIn does not scrape the link, so without a
thumbnail the card simply has none; a failed upload never blocks the post.

``commentary`` is in LinkedIn's "little" text format, whose reserved characters
``| { } @ [ ] ( ) < > # \\ * _ ~`` must be backslash-escaped or LinkedIn silently cuts the text at
the first one. Hashtags (``#word``) and URLs are left as they are so they stay clickable; the
3,000-character limit is counted on the escaped text in UTF-16 units, the stricter reading.

The new post's URN comes back in the ``x-restli-id`` header of the 201. Answers: 426 (the
configured version was retired) disables the endpoint and names the ``version`` key; 422
DUPLICATE_POST counts as sent; a 401 refreshes the token once when a refresh token and the client
credentials are configured, and otherwise disables the endpoint.
"""

from __future__ import annotations

import logging
import re
from functools import cached_property
from typing import Any

import regex

from config.model import LinkedInEndpointConfig
from worker.errors import DuplicatePost, EndpointDisabled, ShareError, UncertainShare
from worker.http import Answer
from worker.share.base import Endpoint, Preview, ShareArticle, ShareResult, shorten
from worker.share.images import load_image
from worker.share.oauth import OAuthClient, RefreshingToken
from worker.share.text import find_urls, utf16_length

log = logging.getLogger(__name__)

RESERVED = frozenset("|{}@[]()<>#\\*_~")
POST_URL = "https://www.linkedin.com/feed/update/{urn}"
MAX_RESPONSE_BYTES = 256 * 1024
# Our own ceiling for thumbnails (LinkedIn documents a pixel cap, not a byte cap).
MAX_IMAGE_BYTES = 5_000_000
MAX_DESCRIPTION = 300
_URN = re.compile(r"urn:li:(?:share|ugcPost):\d+")
_VERSION_CODES = frozenset({"NONEXISTENT_VERSION", "VERSION_MISSING"})
# A hashtag as LinkedIn links it: "#" at a word start, then letters, marks, digits or "_".
_HASHTAG = regex.compile(r"(?<![\w#])#(?=[\p{L}\p{M}\p{N}_]*\p{L})[\p{L}\p{M}\p{N}_]+")


def escape_little(text: str) -> str:
    """``text`` with the little-format reserved characters escaped, except in URLs and hashtags."""
    keep: set[int] = set()
    for start, end in find_urls(text):
        keep.update(range(start, end))
    for match in _HASHTAG.finditer(text):
        keep.add(match.start())
    return "".join("\\" + char if char in RESERVED and i not in keep else char for i, char in enumerate(text))


def _error_fields(answer: Answer) -> tuple[str, str]:
    data = answer.json()
    if not isinstance(data, dict):
        return "", answer.text()
    code = data.get("code") if isinstance(data.get("code"), str) else ""
    details = data.get("errorDetails")
    if not code and isinstance(details, dict):
        for item in details.get("inputErrors") or []:
            if isinstance(item, dict) and isinstance(item.get("code"), str):
                code = item["code"]
                break
    message = data.get("message") if isinstance(data.get("message"), str) else answer.text()
    return str(code), str(message)


class LinkedInEndpoint(Endpoint[LinkedInEndpointConfig]):
    """Shares each article as a LinkedIn article post of a member or an organization."""

    kind = "linkedin"
    max_chars = 3000

    @property
    def api(self) -> str:
        """The API base URL without a trailing slash."""
        return self.config.api.rstrip("/")

    @cached_property
    def oauth(self) -> RefreshingToken:
        """The access token, refreshable when a refresh token and client credentials are configured."""
        config = self.config
        client = None
        if config.refresh_token and config.client_id and config.client_secret:
            client = OAuthClient(
                config.token_url, config.client_id, config.client_secret.get_secret_value(), basic_auth=False
            )
        return RefreshingToken(
            self,
            client,
            access_token=config.access_token.get_secret_value(),
            refresh_token=config.refresh_token.get_secret_value() if config.refresh_token else None,
            setting=f"the access_token (or refresh_token) of endpoint {config.name!r}",
        )

    def text_length(self, text: str) -> int:
        """UTF-16 units of the escaped commentary."""
        return utf16_length(escape_little(text))

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The ``POST /rest/posts`` body (the thumbnail URN is added at publish time)."""
        config = self.config
        card: dict[str, Any] = {"source": self.share_url(article), "title": article.title.strip()}
        description = shorten(article.summary.strip(), MAX_DESCRIPTION)
        if description:
            card["description"] = description
        return {
            "author": config.author,
            "commentary": escape_little(text),
            "visibility": config.visibility,
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "content": {"article": card},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }

    def headers(self, token: str) -> dict[str, str]:
        """The headers of every Rest.li call."""
        return {
            "Authorization": f"Bearer {token}",
            "LinkedIn-Version": self.config.version,
            "X-Restli-Protocol-Version": "2.0.0",
            "Content-Type": "application/json",
        }

    def error_for(self, answer: Answer) -> ShareError | None:
        """Retired versions, duplicates and LinkedIn's JSON error bodies."""
        code, message = _error_fields(answer)
        text = f"{self.name}: LinkedIn answered HTTP {answer.status}: {message}"
        if answer.status == 426 or code in _VERSION_CODES:
            return EndpointDisabled(
                f"{text}. LinkedIn no longer serves API version {self.config.version}: set "
                f"endpoints[{self.name}].version to a current YYYYMM version",
                status=answer.status,
            )
        if answer.status == 422 and (code == "DUPLICATE_POST" or "duplicate" in message.lower()):
            urn = _URN.search(message)
            return DuplicatePost(text, 422, urn.group(0) if urn else "")
        return None

    def upload_thumbnail(self, url: str, token: str) -> str | None:
        """Upload the picture at ``url`` through the Images API; its URN, or None on any failure."""
        image = load_image(self, url, max_bytes=MAX_IMAGE_BYTES)
        if image is None:
            return None
        try:
            answer = self.send(
                "POST",
                f"{self.api}/rest/images?action=initializeUpload",
                what="initializeUpload",
                json={"initializeUploadRequest": {"owner": self.config.author}},
                headers=self.headers(token),
                max_bytes=MAX_RESPONSE_BYTES,
            )
            data = answer.json()
            value = data.get("value") if isinstance(data, dict) else None
            upload_url = value.get("uploadUrl") if isinstance(value, dict) else None
            urn = value.get("image") if isinstance(value, dict) else None
            if not isinstance(upload_url, str) or not isinstance(urn, str):
                log.info(
                    "%s: thumbnail skipped: initializeUpload answered without uploadUrl/image", self.name
                )
                return None
            self.send(
                "PUT",
                upload_url,
                what="image upload",
                data=image.data,
                headers={"Authorization": f"Bearer {token}", "Content-Type": image.mime_type},
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except ShareError as exc:
            log.info("%s: thumbnail skipped: %s", self.name, exc)
            return None
        return urn

    def _post(self, payload: dict[str, Any], token: str) -> Answer:
        return self.send(
            "POST",
            f"{self.api}/rest/posts",
            what="POST /rest/posts",
            json=payload,
            headers=self.headers(token),
            max_bytes=MAX_RESPONSE_BYTES,
        )

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Upload the thumbnail if any, then create the post; refresh the token once on a 401."""
        token = self.oauth.current()
        payload = preview.payload
        if preview.image:
            urn = self.upload_thumbnail(preview.image, token)
            if urn:
                article = {**payload["content"]["article"], "thumbnail": urn}
                payload = {**payload, "content": {"article": article}}
        try:
            try:
                answer = self._post(payload, token)
            except EndpointDisabled as exc:
                if exc.status != 401 or not self.oauth.can_refresh:
                    raise
                answer = self._post(payload, self.oauth.refresh())
        except DuplicatePost as dup:
            return ShareResult(
                remote_id=dup.urn,
                remote_url=POST_URL.format(urn=dup.urn) if dup.urn else None,
                duplicate=True,
            )
        urn = answer.headers.get("x-restli-id", "").strip()
        if not urn:
            raise UncertainShare(
                self.redact(f"{self.name}: LinkedIn answered {answer.status} without x-restli-id")
            )
        return ShareResult(remote_id=urn, remote_url=POST_URL.format(urn=urn))
