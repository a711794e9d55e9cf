"""Telegram endpoint: a bot posts each article to a channel or chat through the Bot API.

``POST {api}/bot<token>/sendMessage`` sends the text in HTML parse mode (the title in bold, ``<``,
``>`` and ``&`` of the article escaped) with a link preview of the article. With a lead image
(``image: true``) the post is ``sendPhoto`` with the picture's URL (Telegram fetches it) and the
text as its caption, as long as the text fits a caption; a longer text, or a picture Telegram
cannot fetch, goes out as the plain message instead, since a broken image must not block the post.
Lengths are Telegram's: UTF-16 code units after entity parsing (tags and ``&lt;`` do not count),
at most 4,096 for a message and 1,024 for a caption.

Errors come as ``{"ok": false, "error_code", "description", "parameters"}``: 429 is transient
(``parameters.retry_after``); 401, 403 (bot blocked, kicked, not a member) and 400 "chat not
found" or missing rights disable the endpoint; other 400s refuse the post. A group that became a
supergroup answers 400 with ``parameters.migrate_to_chat_id``: the new id is saved in the token
store, used from then on instead of the configured one, and the post is retried once at once.

The bot token sits in the URL path, so no URL is put in any message (``send`` redacts the token
in whatever the HTTP layer says). Telegram cannot find a post again: ``lookup`` stays uncertain.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from config.model import TelegramEndpointConfig
from worker.errors import (
    ChatMigrated,
    EndpointDisabled,
    PermanentShareError,
    PhotoRefused,
    ShareError,
    TransientShareError,
    UncertainShare,
)
from worker.http import Answer
from worker.share.base import Endpoint, Preview, ShareArticle, ShareResult, check_idempotency_key
from worker.share.text import utf16_length

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096
CAPTION_LIMIT = 1024
MAX_RESPONSE_BYTES = 256 * 1024
# 400 descriptions that mean the bot cannot post to this chat at all, whatever the post.
_DISABLING = (
    "chat not found",
    "not enough rights",
    "need administrator rights",
    "have no rights to send",
    "chat_write_forbidden",
)
# 400 descriptions of sendPhoto that blame the picture, not the post.
_PHOTO_REFUSED = (
    "wrong file identifier",
    "failed to get http url content",
    "wrong type of the web page content",
    "photo_invalid_dimensions",
    "image_process_failed",
    "wrong remote file",
)


def escape(text: str) -> str:
    """``text`` safe for HTML parse mode: ``&``, ``<`` and ``>`` as entities."""
    return html.escape(text, quote=False)


def to_html(text: str, title: str) -> str:
    """The plain post ``text`` in Telegram HTML, with the (possibly shortened) ``title`` in bold."""
    title = title.strip()
    start = text.find(title) if title else -1
    end = start + len(title)
    if start < 0:
        # render_text may have cut the title: it then ends its line with an ellipsis.
        first = text.split("\n", 1)[0]
        if len(first) > 1 and first.endswith("…") and title.startswith(first[:-1].rstrip()):
            start, end = 0, len(first)
    if start < 0:
        return escape(text)
    return escape(text[:start]) + "<b>" + escape(text[start:end]) + "</b>" + escape(text[end:])


def _chat_ref(chat_id: str | int) -> str | int:
    """A chat id as the Bot API takes it: an integer, or ``@username``."""
    if isinstance(chat_id, int):
        return chat_id
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


class TelegramEndpoint(Endpoint[TelegramEndpointConfig]):
    """Posts to the Telegram chat ``config.chat_id`` as the bot whose token is ``config.bot_token``."""

    kind = "telegram"
    max_chars = MESSAGE_LIMIT

    def text_length(self, text: str) -> int:
        """Telegram's count of the text (without tags, which are added afterwards): UTF-16 code units."""
        return utf16_length(text)

    # ------------------------------------------------------------ chat id

    def chat_id(self) -> str | int:
        """The chat posted to: a migrated supergroup id from the token store, else the configured one.

        A stored id applies only while the config still names the chat it replaced, so an operator
        who points the endpoint elsewhere is obeyed.
        """
        state = self.tokens.load(self.name)
        stored = state.get("chat_id")
        if (
            isinstance(stored, int)
            and not isinstance(stored, bool)
            and state.get("migrated_from") == self.config.chat_id
        ):
            return stored
        return _chat_ref(self.config.chat_id)

    def _save_chat_id(self, chat_id: int) -> None:
        state = self.tokens.load(self.name)
        # Stored as an integer: the token store's strings are treated as secrets and redacted.
        state.update({"chat_id": chat_id, "migrated_from": self.config.chat_id})
        self.tokens.save(self.name, state)

    # ------------------------------------------------------------ rendering

    def render(self, article: ShareArticle) -> Preview:
        """Render the ``sendPhoto`` or ``sendMessage`` body; ``image`` is set only for a photo post."""
        preview = super().render(article)
        photo = preview.payload.get("photo")
        return Preview(
            endpoint=preview.endpoint,
            kind=preview.kind,
            text=preview.text,
            payload=preview.payload,
            image=photo if isinstance(photo, str) else None,
            article=article,
        )

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The ``sendPhoto`` body if there is a picture and the text fits a caption, else ``sendMessage``."""
        markup = to_html(text, article.title)
        image = article.image if self.config.image else None
        if image and utf16_length(text) <= CAPTION_LIMIT:
            return {
                "chat_id": self.chat_id(),
                "photo": image,
                "caption": markup,
                "parse_mode": "HTML",
                "disable_notification": self.config.disable_notification,
            }
        return self._message(markup, self.share_url(article))

    def _message(self, markup: str, url: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {"prefer_large_media": self.config.image}
        if url:
            options = {"url": url, **options}
        return {
            "chat_id": self.chat_id(),
            "text": markup,
            "parse_mode": "HTML",
            "link_preview_options": options,
            "disable_notification": self.config.disable_notification,
        }

    # ------------------------------------------------------------ publishing

    def _call(self, method: str, payload: dict[str, Any]) -> Answer:
        token = self.config.bot_token.get_secret_value()
        url = f"{self.config.api.rstrip('/')}/bot{token}/{method}"
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return self.send(
            "POST",
            url,
            what=method,
            data=body,
            headers={"Content-Type": "application/json"},
            max_bytes=MAX_RESPONSE_BYTES,
        )

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Send the rendered body; follow one chat migration and fall back from a refused photo."""
        check_idempotency_key(idempotency_key)
        payload = {**preview.payload, "chat_id": self.chat_id()}
        method = "sendPhoto" if "photo" in payload else "sendMessage"
        migrated = False
        while True:
            try:
                answer = self._call(method, payload)
                break
            except ChatMigrated as exc:
                if migrated:
                    raise PermanentShareError(str(exc), status=exc.status) from None
                migrated = True
                self._save_chat_id(exc.chat_id)
                log.warning(
                    "%s: the chat moved to supergroup %s; using it from now on", self.name, exc.chat_id
                )
                payload["chat_id"] = exc.chat_id
            except PhotoRefused as exc:
                if method != "sendPhoto":
                    raise PermanentShareError(str(exc), status=exc.status) from None
                log.info("%s: photo refused, sending the text alone: %s", self.name, exc)
                url = self.share_url(preview.article) if preview.article else None
                method = "sendMessage"
                payload = {**self._message(str(payload["caption"]), url), "chat_id": payload["chat_id"]}
        return self._result(answer)

    def _result(self, answer: Answer) -> ShareResult:
        data = answer.json()
        result = data.get("result") if isinstance(data, dict) else None
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise UncertainShare(
                f"{self.name}: Telegram answered HTTP {answer.status} without a message id: {answer.text()}",
                status=answer.status,
            )
        username = None
        if self.config.chat_id.startswith("@"):
            username = self.config.chat_id[1:]
        else:
            chat = result.get("chat") if isinstance(result, dict) else None
            if isinstance(chat, dict) and isinstance(chat.get("username"), str) and chat["username"]:
                username = chat["username"]
        remote_url = f"https://t.me/{username}/{message_id}" if username else None
        return ShareResult(remote_id=str(message_id), remote_url=remote_url)

    def error_for(self, answer: Answer) -> ShareError | None:
        """Map the Bot API's ``error_code``, ``description`` and ``parameters`` to the error tree."""
        data = answer.json()
        if not isinstance(data, dict):
            return None
        description = str(data.get("description") or f"HTTP {answer.status}")
        parameters = data.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        code = data.get("error_code") if isinstance(data.get("error_code"), int) else answer.status
        message = f"{self.name}: Telegram: {description}"
        if answer.status == 429 or code == 429:
            return TransientShareError(message, status=answer.status, retry_after=self.quota_wait)
        new_chat = parameters.get("migrate_to_chat_id")
        if isinstance(new_chat, int) and not isinstance(new_chat, bool):
            return ChatMigrated(message, new_chat)
        if answer.status in (401, 403) or code in (401, 403):
            return EndpointDisabled(message, status=answer.status)
        if answer.status == 400:
            lowered = description.lower()
            if any(sign in lowered for sign in _DISABLING):
                return EndpointDisabled(message, status=answer.status)
            if any(sign in lowered for sign in _PHOTO_REFUSED):
                return PhotoRefused(message, status=answer.status)
            return PermanentShareError(message, status=answer.status)
        return None
