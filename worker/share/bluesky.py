"""Bluesky endpoint: an ``app.bsky.feed.post`` with a link card, written to the account's PDS over XRPC.

Session: ``com.atproto.server.createSession`` with the handle (or DID) and an app password gives an
access JWT (about two hours), a refresh JWT and the account's DID; they live in the token store,
never in the YAML. The access JWT is refreshed with ``refreshSession`` shortly before its ``exp``
and once more when the PDS answers ``ExpiredToken``/``InvalidToken`` (a **400**, not a 401); when
the refresh token is dead too, a new session is created. A wrong app password (401) disables the
endpoint.

Post: ``com.atproto.repo.putRecord`` under a record key derived from the idempotency key and the
article's ``first_seen``, a valid TID, so a redelivery addresses the same record. It is sent with
``swapRecord: null`` (write only if absent): a second attempt gets ``InvalidSwap`` and is reported
as a duplicate instead of rewriting the post. The record holds ``text`` (at most 300 graphemes and
3,000 UTF-8 bytes), ``facets`` for links and hashtags (UTF-8 byte offsets), ``langs`` and an
``app.bsky.embed.external`` card whose thumbnail is the lead image uploaded with
``com.atproto.repo.uploadBlob``; a picture that cannot be fetched or uploaded leaves the card
without a thumbnail.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from config.model import BlueskyEndpointConfig
from worker.errors import (
    EndpointDisabled,
    PermanentShareError,
    RecordExists,
    RecordNotFound,
    ShareError,
    TokenRejected,
    TransientShareError,
)
from worker.http import Answer
from worker.share.base import (
    Endpoint,
    Preview,
    ShareArticle,
    ShareResult,
    check_idempotency_key,
    idempotency_key,
    iso_utc,
    shorten,
)
from worker.share.images import load_image
from worker.share.text import bluesky_facets, grapheme_length, utf8_length

POST_COLLECTION = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
MAX_THUMB_BYTES = 1_000_000
MAX_LANGS = 3
CARD_DESCRIPTION_CHARS = 300
# Refresh this many seconds before the access JWT's exp, so a request never starts with a token
# that dies on the way.
REFRESH_MARGIN = 120
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
_ACCOUNT_ERRORS = frozenset(
    {"AccountTakedown", "AccountDeactivated", "RepoTakendown", "RepoDeactivated", "RepoSuspended"}
)


def tid(micros: int, clock_id: int) -> str:
    """The TID (13 base32-sortable characters) of ``micros`` since the epoch and a 10-bit ``clock_id``."""
    if not 0 <= micros < 1 << 53 or not 0 <= clock_id < 1 << 10:
        raise ValueError("a TID holds 53 bits of microseconds and a 10-bit clock id")
    value = (micros << 10) | clock_id
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def record_key(key: str, moment: datetime) -> str:
    """The post's record key for idempotency ``key``: a TID within one second of ``moment``.

    The second comes from ``moment`` (so keys sort roughly by when articles arrived); the
    microseconds and the clock id come from a digest of ``key``, so two articles first seen in
    the same second collide with a probability of about one in a billion.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    seconds = int(moment.timestamp() // 1)
    return tid(seconds * 1_000_000 + digest % 1_000_000, (digest >> 40) & 0x3FF)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, read without verifying it; None if unreadable."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class BlueskyEndpoint(Endpoint[BlueskyEndpointConfig]):
    """Posts each article with a link card to a Bluesky account on ``config.service``.

    Idempotent: the record key is a function of the idempotency key, and the write only creates.
    """

    kind = "bluesky"
    max_chars = MAX_GRAPHEMES
    idempotent = True
    can_look_up = True

    def xrpc(self, method: str) -> str:
        """The URL of the XRPC ``method`` on the configured PDS."""
        return f"{self.config.service.rstrip('/')}/xrpc/{method}"

    # ------------------------------------------------------------ rendering

    def text_length(self, text: str) -> int:
        """One number for both limits: graphemes, or a tenth of the UTF-8 bytes if that is more.

        ``length <= 300`` holds exactly when the text has at most 300 graphemes and 3,000 bytes.
        """
        return max(grapheme_length(text), -(-utf8_length(text) // (MAX_BYTES // MAX_GRAPHEMES)))

    def build_payload(self, article: ShareArticle, text: str) -> dict[str, Any]:
        """The ``putRecord`` body; publish puts in the session's DID and the uploaded thumbnail."""
        record: dict[str, Any] = {
            "$type": POST_COLLECTION,
            "text": text,
            "createdAt": iso_utc(self.now()),
        }
        facets = bluesky_facets(text)
        if facets:
            record["facets"] = facets
        langs = list(self.config.langs) or ([article.language] if article.language else [])
        if langs:
            record["langs"] = langs[:MAX_LANGS]
        record["embed"] = {
            "$type": "app.bsky.embed.external",
            "external": {
                "uri": self.share_url(article),
                "title": article.title.strip(),
                "description": shorten(article.summary.strip(), CARD_DESCRIPTION_CHARS),
            },
        }
        moment = article.first_seen or article.published or self.now()
        return {
            "repo": self.config.identifier,
            "collection": POST_COLLECTION,
            "rkey": record_key(idempotency_key(article, self.name), moment),
            "swapRecord": None,
            "record": record,
        }

    # ------------------------------------------------------------ session

    def error_for(self, answer: Answer) -> ShareError | None:
        """Map the XRPC error codes that the status alone gets wrong (token errors come as 400)."""
        body = answer.json()
        if not isinstance(body, dict) or not isinstance(body.get("error"), str):
            return None
        code = body["error"]
        detail = f"{self.name}: HTTP {answer.status} {code}: {str(body.get('message', ''))[:200]}"
        if code in _TOKEN_ERRORS:
            return TokenRejected(detail, status=answer.status)
        if code == "InvalidSwap":
            return RecordExists(detail, status=answer.status)
        if code == "RecordNotFound":
            return RecordNotFound(detail, status=answer.status)
        if code == "AuthFactorTokenRequired":
            return EndpointDisabled(detail + " (the account asks for an email code: use an app password)")
        if code in _ACCOUNT_ERRORS:
            return EndpointDisabled(detail, status=answer.status)
        return None

    def _store(self, body: Any, what: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) and body[k] for k in ("accessJwt", "refreshJwt", "did")
        ):
            raise TransientShareError(f"{self.name}: {what}: the PDS answered without a session", sent=True)
        state = {k: body[k] for k in ("accessJwt", "refreshJwt", "did")}
        if isinstance(body.get("handle"), str):
            state["handle"] = body["handle"]
        self.tokens.save(self.name, state)
        return state

    def login(self) -> dict[str, Any]:
        """Create a session with the app password and store it; a wrong password is EndpointDisabled."""
        answer = self.send(
            "POST",
            self.xrpc("com.atproto.server.createSession"),
            what="createSession",
            json={
                "identifier": self.config.identifier,
                "password": self.config.app_password.get_secret_value(),
            },
        )
        return self._store(answer.json(), "createSession")

    def refresh(self, state: dict[str, Any]) -> dict[str, Any]:
        """Trade the stored refresh JWT for a new session; log in again if the PDS refuses it."""
        token = state.get("refreshJwt")
        if isinstance(token, str) and token:
            try:
                answer = self.send(
                    "POST",
                    self.xrpc("com.atproto.server.refreshSession"),
                    what="refreshSession",
                    headers={"Authorization": f"Bearer {token}"},
                )
            except TokenRejected:
                pass
            else:
                return self._store(answer.json(), "refreshSession")
        return self.login()

    def session(self) -> dict[str, Any]:
        """A session whose access JWT is good for a while: stored, refreshed or new."""
        state = self.tokens.load(self.name)
        access = state.get("accessJwt")
        if isinstance(access, str) and access and isinstance(state.get("did"), str):
            exp = jwt_expiry(access)
            if exp is None or exp - time.time() > REFRESH_MARGIN:
                return state
            return self.refresh(state)
        if state.get("refreshJwt"):
            return self.refresh(state)
        return self.login()

    def _authorized(self, method: str, xrpc: str, **kwargs: Any) -> tuple[Answer, dict[str, Any]]:
        """Send with the session's access JWT; on a token error refresh once and send again."""
        state = self.session()
        headers = dict(kwargs.pop("headers", None) or {})
        for attempt in (1, 2):
            try:
                answer = self.send(
                    method,
                    self.xrpc(xrpc),
                    what=xrpc.rsplit(".", 1)[-1],
                    headers={**headers, "Authorization": f"Bearer {state['accessJwt']}"},
                    **kwargs,
                )
                return answer, state
            except TokenRejected:
                if attempt == 2:
                    raise
                state = self.refresh(state)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ publishing

    def _check_length(self, text: str) -> None:
        graphemes, size = grapheme_length(text), utf8_length(text)
        if graphemes > MAX_GRAPHEMES or size > MAX_BYTES:
            raise PermanentShareError(
                f"{self.name}: the text has {graphemes} graphemes and {size} UTF-8 bytes; "
                f"Bluesky takes at most {MAX_GRAPHEMES} and {MAX_BYTES}"
            )

    def _thumb(self, url: str) -> dict[str, Any] | None:
        """The lead image uploaded as a blob, or None if it cannot be had (the card goes out without)."""
        image = load_image(self, url, max_bytes=MAX_THUMB_BYTES)
        if image is None:
            return None
        try:
            answer, _ = self._authorized(
                "POST",
                "com.atproto.repo.uploadBlob",
                data=image.data,
                headers={"Content-Type": image.mime_type},
            )
        except (TransientShareError, EndpointDisabled):
            # The post would fail the same way: retry it (or disable) rather than lose the picture.
            raise
        except PermanentShareError:
            return None
        body = answer.json()
        blob = body.get("blob") if isinstance(body, dict) else None
        return blob if isinstance(blob, dict) and blob.get("$type") == "blob" else None

    def web_url(self, did: str, rkey: str) -> str:
        """The post on bsky.app; by DID, which outlives handle changes."""
        return f"https://bsky.app/profile/{did}/post/{rkey}"

    def _rkey(self, preview: Preview, key: str) -> str:
        article = preview.article
        moment = (article.first_seen or article.published) if article is not None else None
        if moment is None:
            raise PermanentShareError(
                f"{self.name}: the article has no first_seen time to derive a stable record key from"
            )
        return record_key(key, moment)

    def publish(self, preview: Preview, idempotency_key: str) -> ShareResult:
        """Write the post (creating only); an existing record under our key counts as sent (duplicate)."""
        key = check_idempotency_key(idempotency_key)
        record = json.loads(json.dumps(preview.payload["record"]))
        self._check_length(record["text"])
        rkey = self._rkey(preview, key)
        state = self.session()
        if preview.image:
            thumb = self._thumb(preview.image)
            if thumb is not None:
                record["embed"]["external"]["thumb"] = thumb
        body = {**preview.payload, "repo": state["did"], "rkey": rkey, "record": record}
        did = str(state["did"])
        ours = f"at://{did}/{POST_COLLECTION}/{rkey}"
        try:
            answer, _ = self._authorized("POST", "com.atproto.repo.putRecord", json=body)
        except RecordExists:
            return ShareResult(remote_id=ours, remote_url=self.web_url(did, rkey), duplicate=True)
        data = answer.json()
        uri = data.get("uri") if isinstance(data, dict) else None
        return ShareResult(
            remote_id=uri if isinstance(uri, str) and uri.startswith("at://") else ours,
            remote_url=self.web_url(did, rkey),
        )

    def lookup(self, preview: Preview, idempotency_key: str) -> ShareResult | None:
        """The post under our record key (``getRecord``), or None if the PDS has no such record."""
        rkey = self._rkey(preview, check_idempotency_key(idempotency_key))
        state = self.tokens.load(self.name)
        did = state.get("did")
        repo = did if isinstance(did, str) and did else str(self.session()["did"])
        try:
            answer = self.send(
                "GET",
                self.xrpc("com.atproto.repo.getRecord"),
                what="getRecord",
                params={"repo": repo, "collection": POST_COLLECTION, "rkey": rkey},
            )
        except RecordNotFound:
            return None
        data = answer.json()
        uri = data.get("uri") if isinstance(data, dict) else None
        if not isinstance(uri, str):
            uri = f"at://{repo}/{POST_COLLECTION}/{rkey}"
        return ShareResult(remote_id=uri, remote_url=self.web_url(repo, rkey))
