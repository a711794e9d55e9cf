"""Mastodon endpoint: post a status through the REST API of any Mastodon-compatible instance.

The text limit is the instance's own (``configuration.statuses.max_characters`` and
``characters_reserved_per_url`` of ``GET /api/v2/instance``), kept in the token store with the
time it was read and refreshed after a day; until it is known, Mastodon's defaults (500, 23) apply.
:meth:`MastodonEndpoint.render` only reads that cache, so previews stay offline;
:meth:`MastodonEndpoint.publish` loads it when missing and renders again when the text no longer
fits. With ``media: true`` the lead image is uploaded first (``POST /api/v2/media``, the alt text
filled from ``alt_text``); a failed upload never blocks the post.

``POST /api/v1/statuses`` carries ``Idempotency-Key``, so a redelivered task returns the first
status instead of posting again. Mastodon remembers a key for about an hour only, so the keys of
attempts that did not come back with an answer are kept (with their time) in the token store: a
retry older than that window reads the account's recent statuses first (:meth:`lookup`) and only
posts when ours is not among them.

With ``story_edit`` a story's post is edited (``PUT /api/v1/statuses/:id``, :meth:`edit`) when
another partner's version arrives after it was sent (see :func:`worker.outbox.storyedit.edit_story_post`).
"""

from __future__ import annotations

import html
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from config.model import MastodonEndpointConfig
from worker.errors import PermanentShareError, ShareError, TransientShareError
from worker.http import Answer, Outcome
from worker.share.base import (
    Endpoint,
    Preview,
    ShareArticle,
    ShareResult,
    check_idempotency_key,
    iso_utc,
    render_text,
)
from worker.share.images import load_image
from worker.share.text import mastodon_length

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARACTERS = 500
DEFAULT_URL_CHARACTERS = 23
DEFAULT_IMAGE_BYTES = 8_000_000
INSTANCE_TTL = timedelta(days=1)
# Mastodon keeps an Idempotency-Key for one hour; stay well inside it.
IDEMPOTENCY_WINDOW = timedelta(minutes=50)
ATTEMPT_TTL = timedelta(days=7)
MAX_RESPONSE_BYTES = 2_000_000
MEDIA_POLLS = 3
MEDIA_POLL_SECONDS = 1.0
LOOKUP_PAGE = 40
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Regional tags Mastodon knows (LanguagesHelper::ISO_639_1_REGIONAL); others fall back to their language.
REGIONAL_LANGUAGES = frozenset({"es-AR", "es-MX", "pt-BR", "pt-PT", "sr-Latn", "zh-CN", "zh-HK", "zh-TW"})

_INSTANCE = "instance"
_ATTEMPTS = "attempts"


def status_language(tag: str | None) -> str | None:
    """``tag`` as Mastodon's ``language`` parameter: ISO 639, a region only where Mastodon has one.

    An unknown tag would make Mastodon fall back to the account's default language, so ``ro-RO``
    is sent as ``ro`` rather than lost.
    """
    if not tag or not tag.strip():
        return None
    parts = tag.strip().replace("_", "-").split("-")
    primary = parts[0].lower()
    if len(parts) > 1:
        regional = f"{primary}-{parts[1].upper() if len(parts[1]) == 2 else parts[1].title()}"
        if regional in REGIONAL_LANGUAGES:
            return regional
    return primary or None


def parse_instance(data: Any) -> dict[str, Any] | None:
    """The limits we use from an ``/api/v2/instance`` (or v1) document, or None if it has none."""
    if not isinstance(data, dict):
        return None
    configuration = data.get("configuration")
    configuration = configuration if isinstance(configuration, dict) else {}
    statuses = configuration.get("statuses")
    statuses = statuses if isinstance(statuses, dict) else {}
    media = configuration.get("media_attachments")
    media = media if isinstance(media, dict) else {}

    def positive(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    # max_toot_chars: Pleroma, Akkoma and old glitch-soc in /api/v1/instance.
    max_characters = positive(statuses.get("max_characters")) or positive(data.get("max_toot_chars"))
    if max_characters is None:
        return None
    types = media.get("supported_mime_types")
    return {
        "max_characters": max_characters,
        "characters_reserved_per_url": positive(statuses.get("characters_reserved_per_url"))
        or DEFAULT_URL_CHARACTERS,
        "image_size_limit": positive(media.get("image_size_limit")),
        "image_types": sorted(t for t in types if isinstance(t, str) and t in IMAGE_TYPES)
        if isinstance(types, list)
        else None,
    }


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class MastodonEndpoint(Endpoint[MastodonEndpointConfig]):
    """Posts each article as a status on ``config.instance`` with the account's access token."""

    kind = "mastodon"
    idempotent = True
    can_look_up = True
    _instance_info: dict[str, Any] | None = None
    _instance_loaded = False

    def api(self, path: str) -> str:
        """The absolute URL of ``path`` on the instance."""
        return str(self.config.instance).rstrip("/") + path

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.access_token.get_secret_value()}"}

    # ------------------------------------------------------------ instance limits

    def instance_info(self) -> dict[str, Any] | None:
        """The cached instance limits (see :func:`parse_instance`), or None if never read."""
        # Read from the store once per endpoint object: text_length runs dozens of times per render.
        if not self._instance_loaded:
            info = self.tokens.load(self.name).get(_INSTANCE)
            self._instance_info = info if isinstance(info, dict) else None
            self._instance_loaded = True
        return self._instance_info

    def instance_is_fresh(self) -> bool:
        """Whether the cached limits were read less than :data:`INSTANCE_TTL` ago."""
        info = self.instance_info()
        fetched = _parse_time(info.get("fetched_at")) if info else None
        return fetched is not None and self.now() - fetched < INSTANCE_TTL

    def refresh_instance(self) -> dict[str, Any] | None:
        """Read the limits from the instance and cache them; None (cache untouched) if it will not say.

        Falls back to ``/api/v1/instance`` on servers without v2 (Mastodon before 4.0, Pleroma).
        """
        info = None
        for path in ("/api/v2/instance", "/api/v1/instance"):
            try:
                answer = self.send("GET", self.api(path), what=f"GET {path}", max_bytes=MAX_RESPONSE_BYTES)
            except ShareError as exc:
                log.info("%s: instance limits unavailable: %s", self.name, exc)
                if exc.status not in (404, 410):
                    break
                continue
            info = parse_instance(answer.json())
            if info is not None:
                break
        if info is None:
            return None
        info["fetched_at"] = iso_utc(self.now())
        state = self.tokens.load(self.name)
        state[_INSTANCE] = info
        self.tokens.save(self.name, state)
        self._instance_info, self._instance_loaded = info, True
        return info

    def _limit(self, name: str, default: int) -> int:
        info = self.instance_info() or {}
        value = info.get(name)
        return value if isinstance(value, int) and value > 0 else default

    def text_limit(self) -> int:
        """``max_chars`` from the config, else the instance's limit, else 500."""
        if self.config.max_chars is not None:
            return self.config.max_chars
        return self._limit("max_characters", DEFAULT_MAX_CHARACTERS)

    def text_length(self, text: str) -> int:
        """Mastodon's count: code points, each URL as the instance's reserved URL length."""
        return mastodon_length(text, self._limit("characters_reserved_per_url", DEFAULT_URL_CHARACTERS))

    # ------------------------------------------------------------ rendering

    def language(self, article: ShareArticle) -> str | None:
        """The status language: the configured one, else the article's."""
        return status_language(self.config.language or article.language)

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The JSON body of ``POST /api/v1/statuses`` (``media_ids`` are added after the upload)."""
        payload: dict[str, Any] = {"status": text, "visibility": self.config.visibility}
        language = self.language(article)
        if language:
            payload["language"] = language
        return payload

    def alt_text(self, article: ShareArticle) -> str:
        """The image description: ``alt_text`` filled with the article, cut to Mastodon's 1,500."""
        try:
            return render_text(self.config.alt_text, article, 1500)
        except ValueError:
            return article.title.strip()[:1500]

    # ------------------------------------------------------------ publishing

    def error_for(self, answer: Answer) -> ShareError | None:
        """A 4xx from the instance with Mastodon's ``error`` text (422: validation failed)."""
        if answer.outcome is not Outcome.REJECTED or not answer.url.startswith(self.api("/")):
            return None
        data = answer.json()
        message = data.get("error") if isinstance(data, dict) else None
        if not isinstance(message, str) or not message.strip():
            return None
        return PermanentShareError(
            f"{self.name}: HTTP {answer.status}: {message.strip()}", status=answer.status
        )

    def _fitted(self, preview: Preview) -> Preview:
        """``preview``, rendered again if the instance's limit no longer lets its text fit."""
        if preview.article is None or self.text_length(preview.text) <= self.text_limit():
            return preview
        return self.render(preview.article)

    def upload_image(self, preview: Preview) -> str | None:
        """Upload the preview's image as media; its id, or None when there is none or it failed."""
        if not (self.config.media and preview.image):
            return None
        info = self.instance_info() or {}
        types = info.get("image_types")
        image = load_image(
            self,
            preview.image,
            max_bytes=min(info.get("image_size_limit") or DEFAULT_IMAGE_BYTES, DEFAULT_IMAGE_BYTES),
            formats=frozenset(types) if types else IMAGE_TYPES,
        )
        if image is None:
            return None
        extension = image.mime_type.split("/")[1].replace("jpeg", "jpg")
        description = self.alt_text(preview.article) if preview.article else ""
        try:
            answer = self.send(
                "POST",
                self.api("/api/v2/media"),
                what="media upload",
                headers=self._auth(),
                files={"file": (f"image.{extension}", image.data, image.mime_type)},
                data={"description": description} if description else None,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except ShareError as exc:
            log.warning("%s: posting without the image: %s", self.name, exc)
            return None
        data = answer.json()
        media_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(media_id, str | int) or isinstance(media_id, bool) or not str(media_id):
            log.warning("%s: posting without the image: the upload answer has no id", self.name)
            return None
        if answer.status == 202 and not self._media_ready(str(media_id)):
            log.warning("%s: posting without the image: still processing", self.name)
            return None
        return str(media_id)

    def _media_ready(self, media_id: str) -> bool:
        """Wait briefly for media the instance processes in the background (202); images rarely are."""
        for _ in range(MEDIA_POLLS):
            time.sleep(MEDIA_POLL_SECONDS)
            try:
                answer = self.send(
                    "GET", self.api(f"/api/v1/media/{media_id}"), what="media status", headers=self._auth()
                )
            except ShareError:
                return False
            if answer.status == 200:
                return True
        return False

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Post ``preview`` (with its image uploaded first when ``media`` is on) as one status.

        422 is a PermanentShareError with Mastodon's message; 401/403 disable the endpoint;
        429, 5xx, timeouts and unreadable answers are transient (the key makes the retry safe).
        """
        key = check_idempotency_key(idempotency_key)
        if not self.instance_is_fresh():
            self.refresh_instance()
        preview = self._fitted(preview)
        found = self._earlier_attempt(preview, key)
        if found is not None:
            return found
        payload = dict(preview.payload)
        media_id = self.upload_image(preview)
        if media_id is not None:
            payload["media_ids"] = [media_id]
        self._remember_attempt(key)
        try:
            answer = self.send(
                "POST",
                self.api("/api/v1/statuses"),
                what="POST /api/v1/statuses",
                json=payload,
                headers={**self._auth(), "Idempotency-Key": key},
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except PermanentShareError:
            # Refused outright: nothing was posted, so a later attempt has nothing to look for.
            self._forget_attempt(key)
            raise
        result = self._status_result(answer.json())
        if result is None:
            raise TransientShareError(
                self.redact(f"{self.name}: POST /api/v1/statuses: unreadable answer: {answer.text()}"),
                status=answer.status,
                sent=True,
            )
        self._forget_attempt(key)
        return result

    def edit(self, remote_id: str, text: str, article: ShareArticle | None = None) -> ShareResult:
        """``PUT /api/v1/statuses/:id`` with ``text``; the status keeps its media and language.

        The status is read first: an edit without ``media_ids`` may drop its attachments. Sending
        the same text twice leaves the same status (Mastodon adds an entry to its edit history).
        """
        path = f"/api/v1/statuses/{remote_id}"
        current = self.send(
            "GET", self.api(path), what=f"GET {path}", headers=self._auth(), max_bytes=MAX_RESPONSE_BYTES
        ).json()
        payload: dict[str, Any] = {"status": text}
        if isinstance(current, dict):
            media = [
                str(m["id"])
                for m in current.get("media_attachments") or []
                if isinstance(m, dict) and isinstance(m.get("id"), str | int)
            ]
            if media:
                payload["media_ids"] = media
            for field in ("language", "spoiler_text", "sensitive"):
                if current.get(field) not in (None, ""):
                    payload[field] = current[field]
        answer = self.send(
            "PUT",
            self.api(path),
            what=f"PUT {path}",
            json=payload,
            headers=self._auth(),
            max_bytes=MAX_RESPONSE_BYTES,
        )
        result = self._status_result(answer.json())
        if result is None:
            raise TransientShareError(
                self.redact(f"{self.name}: PUT {path}: unreadable answer: {answer.text()}"),
                status=answer.status,
                sent=True,
            )
        return result

    @staticmethod
    def _status_result(data: Any) -> ShareResult | None:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            return None
        url = data.get("url") or data.get("uri")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            url = None
        return ShareResult(remote_id=data["id"], remote_url=url)

    # ------------------------------------------------------------ idempotency beyond Mastodon's hour

    def _attempts(self) -> dict[str, str]:
        attempts = self.tokens.load(self.name).get(_ATTEMPTS)
        return dict(attempts) if isinstance(attempts, dict) else {}

    def _save_attempts(self, attempts: dict[str, str]) -> None:
        state = self.tokens.load(self.name)
        now = self.now()
        state[_ATTEMPTS] = {
            k: v
            for k, v in attempts.items()
            if (when := _parse_time(v)) is not None and now - when < ATTEMPT_TTL
        }
        self.tokens.save(self.name, state)

    def _remember_attempt(self, key: str) -> None:
        attempts = self._attempts()
        if key not in attempts:
            attempts[key] = iso_utc(self.now())
            self._save_attempts(attempts)

    def _forget_attempt(self, key: str) -> None:
        attempts = self._attempts()
        if attempts.pop(key, None) is not None:
            self._save_attempts(attempts)

    def _earlier_attempt(self, preview: Preview, key: str) -> ShareResult | None:
        """The status an attempt older than Mastodon's key memory made, if it can be found."""
        first = _parse_time(self._attempts().get(key))
        if first is None or self.now() - first < IDEMPOTENCY_WINDOW:
            return None
        found = self.lookup(preview, key)
        if found is not None:
            self._forget_attempt(key)
            return ShareResult(found.remote_id, found.remote_url, duplicate=True)
        return None

    def lookup(self, preview: Preview, idempotency_key: str) -> ShareResult | None:
        """Our status among the account's latest ones: the first whose text links the article.

        Reads ``verify_credentials`` for the account id, then its last statuses (no replies or
        boosts). None when none of them carries the link.
        """
        if preview.article is None:
            return None
        links = {preview.article.url, self.share_url(preview.article)}
        me = self.send(
            "GET",
            self.api("/api/v1/accounts/verify_credentials"),
            what="verify_credentials",
            headers=self._auth(),
        ).json()
        if not isinstance(me, dict) or not isinstance(me.get("id"), str):
            raise TransientShareError(f"{self.name}: verify_credentials: unreadable answer", sent=False)
        statuses = self.send(
            "GET",
            self.api(f"/api/v1/accounts/{me['id']}/statuses"),
            what="account statuses",
            headers=self._auth(),
            params={"limit": LOOKUP_PAGE, "exclude_replies": "true", "exclude_reblogs": "true"},
            max_bytes=MAX_RESPONSE_BYTES * 4,
        ).json()
        if not isinstance(statuses, list):
            return None
        for status in statuses:
            if not isinstance(status, dict) or not isinstance(status.get("content"), str):
                continue
            content = html.unescape(status["content"])
            if any(f'href="{link}"' in content for link in links):
                return self._status_result(status)
        return None
