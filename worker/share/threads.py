"""Threads endpoint: create a media container, then publish it (graph.threads.net).

1. ``POST {api}/v1.0/{user_id}/threads`` with ``media_type=TEXT``, ``text`` and ``link_attachment``
   (the article link, shown as a preview card; text posts only), or ``media_type=IMAGE`` with
   ``image_url`` when the article has a lead image and the endpoint's ``image`` is on (Threads
   fetches the picture itself, so it must be public). The answer's ``id`` is the container.
2. ``POST {api}/v1.0/{user_id}/threads_publish`` with ``creation_id`` -> the post id.
3. ``GET {api}/v1.0/{id}?fields=permalink`` for the post's URL; a failure here does not fail the share.

The token goes in the form body of POSTs (in the query only for GETs, which have no body). Text is
at most 500 characters, emoji counting as their UTF-8 bytes (:func:`threads_length`).

A created container is kept in the token store under the idempotency key until the publish
succeeds: when publishing failed transiently (or its answer was lost), the next attempt asks the
container's ``status`` and publishes the same container, so Threads never gets a second post;
``PUBLISHED`` means the lost answer had succeeded, ``EXPIRED``/``ERROR`` that a new one is needed.

The long-lived token (60 days) is refreshed with ``GET {api}/refresh_access_token?
grant_type=th_refresh_token`` when it expires within ``refresh_days`` (at first use its expiry is
unknown, so a refresh is tried then) and once after error 190; refreshes ahead of time are best
effort (Threads refuses to refresh a token younger than 24 hours), the one after a 190 is not.
Graph error codes are mapped as for Facebook (:func:`worker.share.facebook.map_graph_error`).
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import regex

from config.model import ThreadsEndpointConfig
from worker.errors import AlreadyPublished, GraphTokenError, ShareError, TransientShareError, UncertainShare
from worker.http import Answer
from worker.share.base import Endpoint, Preview, ShareArticle, ShareResult
from worker.share.facebook import map_graph_error
from worker.share.oauth import ExchangedToken

log = logging.getLogger(__name__)

API_VERSION = "v1.0"
MAX_RESPONSE_BYTES = 64 * 1024
# Seconds to wait for a container that is still being processed.
PROCESSING_WAIT = 30.0
# After a refresh ahead of time failed, leave the token alone this long.
REFRESH_BACKOFF = 86_400.0
NOT_READY_CODE = 9007
_GRAPHEME = regex.compile(r"\X")
_PICTOGRAPHIC = regex.compile(r"\p{Extended_Pictographic}")


def threads_length(text: str) -> int:
    """Threads' count: characters, except that an emoji counts as its number of UTF-8 bytes."""
    total = 0
    for cluster in _GRAPHEME.findall(text):
        total += len(cluster.encode("utf-8")) if _PICTOGRAPHIC.search(cluster) else len(cluster)
    return total


class ThreadsEndpoint(Endpoint[ThreadsEndpointConfig]):
    """Posts each article to one Threads profile."""

    kind = "threads"
    max_chars = 500

    @property
    def api(self) -> str:
        """The API base URL without a trailing slash."""
        return self.config.api.rstrip("/")

    def text_length(self, text: str) -> int:
        """See :func:`threads_length`."""
        return threads_length(text)

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The container's parameters, without the token (added at publish time)."""
        if article.image and self.config.image:
            return {"media_type": "IMAGE", "image_url": article.image, "text": text}
        return {"media_type": "TEXT", "text": text, "link_attachment": self.share_url(article)}

    def error_for(self, answer: Answer) -> ShareError | None:
        """Graph error codes, plus "media not ready" as a short wait."""
        what = urlsplit(answer.url).path
        error = answer.json()
        code = error.get("error", {}).get("code") if isinstance(error, dict) else None
        if code == NOT_READY_CODE:
            return TransientShareError(
                f"{self.name}: {what}: the container is not ready yet",
                status=answer.status,
                retry_after=PROCESSING_WAIT,
            )
        return map_graph_error(self, answer, what)

    # ------------------------------------------------------------ state

    @cached_property
    def oauth(self) -> ExchangedToken:
        """The long-lived access token, exchanged for a new one ahead of its expiry."""
        return ExchangedToken(
            self,
            f"{self.api}/refresh_access_token",
            "th_refresh_token",
            access_token=self.config.access_token.get_secret_value(),
            setting=f"the access_token of endpoint {self.config.name!r}",
            margin=self.config.refresh_days * 86_400,
            backoff=REFRESH_BACKOFF,
        )

    def _containers(self) -> dict[str, Any]:
        containers = self.tokens.load(self.name).get("containers")
        return dict(containers) if isinstance(containers, dict) else {}

    def _keep_container(self, key: str, container_id: str | None) -> None:
        state = self.tokens.load(self.name)
        containers = dict(state.get("containers") or {})
        if container_id is None:
            containers.pop(key, None)
        else:
            containers[key] = {"id": container_id, "created_at": self.now().timestamp()}
        state["containers"] = containers
        self.tokens.save(self.name, state)

    # ------------------------------------------------------------ requests

    def _post(self, path: str, form: dict[str, Any], what: str) -> dict[str, Any]:
        """POST with the token, refreshing it once on error 190."""
        for attempt in (0, 1):
            token = self.oauth.current() if attempt == 0 else self.oauth.refresh()
            try:
                answer = self.send(
                    "POST",
                    f"{self.api}/{API_VERSION}/{path}",
                    what=what,
                    data={**form, "access_token": token},
                    headers={"Accept": "application/json"},
                    max_bytes=MAX_RESPONSE_BYTES,
                )
            except GraphTokenError:
                if attempt:
                    raise
                continue
            data = answer.json()
            return data if isinstance(data, dict) else {}
        raise AssertionError("unreachable")

    def _get(self, object_id: str, fields: str) -> dict[str, Any]:
        answer = self.send(
            "GET",
            f"{self.api}/{API_VERSION}/{object_id}",
            what=f"GET {object_id}",
            params={"fields": fields, "access_token": self.oauth.current()},
            max_bytes=MAX_RESPONSE_BYTES,
        )
        data = answer.json()
        return data if isinstance(data, dict) else {}

    def _reusable(self, key: str) -> str | None:
        """The stored container of ``key`` if it can still be published; ShareResult-worthy states raise."""
        entry = self._containers().get(key)
        container_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(container_id, str):
            return None
        status = str(self._get(container_id, "status,error_message").get("status") or "")
        if status == "FINISHED":
            return container_id
        if status == "IN_PROGRESS":
            raise TransientShareError(
                f"{self.name}: container {container_id} is still being processed", retry_after=PROCESSING_WAIT
            )
        if status == "PUBLISHED":
            raise AlreadyPublished(container_id)
        # EXPIRED, ERROR or unknown: this container was never published; start over.
        self._keep_container(key, None)
        return None

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Create (or reuse) the container, publish it, then look up its permalink."""
        user = self.config.user_id
        try:
            container_id = self._reusable(idempotency_key)
        except AlreadyPublished:
            self._keep_container(idempotency_key, None)
            return ShareResult(remote_id="", remote_url=None, duplicate=True)
        if container_id is None:
            created = self._post(f"{user}/threads", preview.payload, "create container")
            new_id = created.get("id")
            if not isinstance(new_id, str) or not new_id:
                raise TransientShareError(f"{self.name}: create container: the answer holds no id")
            container_id = new_id
            self._keep_container(idempotency_key, container_id)
        try:
            published = self._post(f"{user}/threads_publish", {"creation_id": container_id}, "publish")
        except TransientShareError:
            raise  # the container stays stored: the next attempt publishes it, not a new one
        except ShareError:
            self._keep_container(idempotency_key, None)
            raise
        self._keep_container(idempotency_key, None)
        post_id = published.get("id")
        if not isinstance(post_id, str) or not post_id:
            raise UncertainShare(self.redact(f"{self.name}: publish answered without a post id"))
        return ShareResult(remote_id=post_id, remote_url=self.permalink(post_id))

    def permalink(self, post_id: str) -> str | None:
        """The post's public URL, or None when Threads does not say (the share still counts)."""
        try:
            link = self._get(post_id, "permalink").get("permalink")
        except ShareError as exc:
            log.info("%s: permalink of %s unavailable: %s", self.name, post_id, exc)
            return None
        return link if isinstance(link, str) and link.startswith("https://") else None
