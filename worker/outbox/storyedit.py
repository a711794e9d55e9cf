"""Editing a story's sent post to name the versions that arrived after it (Mastodon ``story_edit``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from config import Config
from worker.errors import (
    Deferred,
    ShareError,
    TransientShareError,
)
from worker.outbox.claiming import version_key
from worker.outbox.planning import edits_posts
from worker.outbox.retry import EDIT_RETRY, edit_wait
from worker.share import Endpoint
from worker.store.models import Article, Share, utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


# What an edited post adds after the text it was sent with (Mastodon ``story_edit``).
ALSO_REPORTED = "\n\nAlso reported by: "
_edit_locks = threading.Lock()  # without Redis: one process


def story_edit_text(endpoint: Endpoint, posted: str, mentions: Sequence[str]) -> str:
    """The post's text naming ``mentions`` ("<source> <url>"), within the network's limit.

    Computed from the text the post was sent with (``posted``, any earlier "Also reported by"
    cut off) and the story's versions, never appended: the same versions give the same text. A
    mention that does not fit is left out.
    """
    base = posted.partition(ALSO_REPORTED)[0]
    limit = endpoint.text_limit()
    listed: list[str] = []
    for mention in mentions:
        candidate = base + ALSO_REPORTED + ", ".join([*listed, mention])
        if limit is None or endpoint.text_length(candidate) <= limit:
            listed.append(mention)
    return base + ALSO_REPORTED + ", ".join(listed) if listed else base


def _edit_lock(rt: Runtime, share_id: int) -> AbstractContextManager[object]:
    if rt.redis_client is None:
        return _edit_locks
    return rt.redis_client.lock(f"syndicate:story-edit:{share_id}", timeout=60, blocking_timeout=30)


def edit_story_post(rt: Runtime, share_id: int, *, joined_while_sending: bool = False) -> str:
    """Name the story's other versions in its sent post where the endpoint edits (``story_edit``).

    Runs when a version arrives after the post was sent (its planning hands the story's share back
    for delivery) and right after sending (``joined_while_sending``: only if a version became
    ready after the claim). Exactly once per text: the text is computed from the story's versions
    under a lock per share and stored as the share's ``text`` once the network took it, so a
    second run finds nothing to change. A network that cannot take the edit now raises
    :class:`Deferred` (given up :data:`~worker.outbox.retry.EDIT_GIVE_UP` after the newest version
    arrived); one that refuses it is logged, and the post stays as it is.
    """

    try:
        with _edit_lock(rt, share_id):
            return _edit_story_post(rt, share_id, joined_while_sending)
    except redis.exceptions.LockError:
        raise Deferred(EDIT_RETRY, "another worker is editing the story's post") from None


def _edit_story_post(rt: Runtime, share_id: int, joined_while_sending: bool) -> str:
    with rt.session() as session:
        share = session.get(Share, share_id)
        if share is None:
            raise LookupError(f"no share with id {share_id}")
        if share.status != "sent" or share.story_id is None or not share.remote_id or share.text is None:
            return share.status
        try:
            config = rt.config.endpoint(share.endpoint)
        except KeyError:
            return share.status
        if not edits_posts(config):
            return share.status
        query = select(Article).options(joinedload(Article.source))
        versions = list(
            session.scalars(
                query.where(
                    Article.story_id == share.story_id,
                    Article.status == "ready",
                    Article.id != share.article_id,
                )
            )
        )
        if joined_while_sending and not any(
            v.changed_at is not None and share.claimed_at is not None and v.changed_at >= share.claimed_at
            for v in versions
        ):
            return share.status
        versions.sort(key=lambda v: version_key(rt.config, config, v))
        mentions = [f"{_source_title(rt.config, v)} {v.canonical_url}" for v in versions]
        remote_id, posted = share.remote_id, share.text
        arrived = [v.changed_at for v in versions if v.changed_at is not None]
        newest = max(arrived, default=share.sent_at or utcnow())
    endpoint = rt.endpoint(config.name)
    text = story_edit_text(endpoint, posted, mentions)
    if text == posted:
        return "sent"
    try:
        endpoint.edit(remote_id, text)
    except NotImplementedError:
        return "sent"
    except TransientShareError as exc:
        wait = edit_wait(utcnow() - newest)
        if wait is None:
            log.warning("%s: share %s: gave up editing the story's post: %s", config.name, share_id, exc)
            return "sent"
        raise Deferred(wait, f"editing the story's post: {exc}") from None
    except ShareError as exc:
        log.warning("%s: share %s: the story's post was not edited: %s", config.name, share_id, exc)
        return "sent"
    with rt.session() as session:
        session.execute(
            update(Share)
            .where(Share.id == share_id, Share.status == "sent")
            .values(text=text)
            .execution_options(synchronize_session=False)
        )
    log.info(
        "%s: share %s: the story's post now names %d other versions", config.name, share_id, len(mentions)
    )
    return "sent"


def _source_title(config: Config, article: Article) -> str:
    """The display name of ``article``'s source (its ``title``, else its name)."""
    try:
        return config.source(article.source.name).title or article.source.name
    except KeyError:
        return article.source.name
