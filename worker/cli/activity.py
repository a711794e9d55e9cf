"""What a publisher cares about, as it happens: one readable line per event, for ``syndicate up``'s terminal.

``up`` sends the full logs of its processes to files under ``var/log/``; its terminal keeps the summary
and then these lines: a story gathered (or not), a feed updated, a post sent, held or failed, each with
its link. :class:`ActivityWatch` reads them from the database, which every worker writes anyway, so
nothing in the pipeline has to know that someone is watching: each :meth:`~ActivityWatch.poll` returns
the lines for what changed since the last one (what was there when the watch began is not repeated).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Config
from worker.store.models import Article, Endpoint, FeedRender, Share, Source, utcnow

TITLE_CHARS = 70
ERROR_CHARS = 200
# A pending share due later than this is reported as held (pacing, quiet hours, a delay).
HELD_AFTER_SECONDS = 30.0


def _title(text: str | None) -> str:
    text = " ".join((text or "(untitled)").split())
    return f'"{text[: TITLE_CHARS - 1]}…"' if len(text) > TITLE_CHARS else f'"{text}"'


def _short(text: str | None) -> str:
    line = " ".join((text or "no reason recorded").split())
    return line[: ERROR_CHARS - 1] + "…" if len(line) > ERROR_CHARS else line


class ActivityWatch:
    """Lines for the events since the last :meth:`poll`; what the database held at the start is not news."""

    def __init__(self, session: Callable[[], Session], config: Config, base_url: str) -> None:
        """Watch the database behind ``session`` (a session factory) for ``config``'s feeds and endpoints."""
        self.session = session
        self.config = config
        self.base_url = base_url.rstrip("/")
        with self.session() as db:
            self.article_floor = db.scalar(select(func.max(Article.id))) or 0
            self.share_floor = db.scalar(select(func.max(Share.id))) or 0
            self.feeds = self._feed_versions(db)
        self.articles: set[int] = set()
        self.shares: dict[int, str] = {}

    def poll(self) -> list[str]:
        """The event lines (without a trailing newline) since the last call, oldest first."""
        with self.session() as db:
            return self._articles(db) + self._feeds(db) + self._shares(db)

    def _articles(self, db: Session) -> list[str]:
        rows = db.execute(
            select(Article.id, Article.status, Article.title, Article.url, Article.error, Source.name)
            .join(Source, Source.id == Article.source_id)
            .where(Article.id > self.article_floor, Article.status.in_(("ready", "failed")))
            .order_by(Article.id)
        ).all()
        lines = []
        for article_id, status, title, url, error, source in rows:
            if article_id in self.articles:
                continue
            self.articles.add(article_id)
            if status == "ready":
                lines.append(_line("gathered", f"{_title(title)} from {source}  {url}"))
            else:
                lines.append(_line("not gathered", f"{url} from {source}: {_short(error)}"))
        return lines

    def _feed_versions(self, db: Session) -> dict[str, tuple[str, int]]:
        rows = db.execute(
            select(FeedRender.feed_name, FeedRender.etag, FeedRender.item_count).where(
                FeedRender.format == "rss"
            )
        ).all()
        return {name: (etag, items) for name, etag, items in rows}

    def _feeds(self, db: Session) -> list[str]:
        now = self._feed_versions(db)
        lines = []
        for name, (etag, items) in sorted(now.items()):
            if self.feeds.get(name, ("", 0))[0] != etag:
                plural = "" if items == 1 else "s"
                lines.append(
                    _line("feed", f"{name} updated: {items} item{plural}  {self.base_url}/feeds/{name}.rss")
                )
        self.feeds = now
        return lines

    def _shares(self, db: Session) -> list[str]:
        disabled = set(db.scalars(select(Endpoint.name).where(Endpoint.disabled_at.is_not(None))))
        rows = db.execute(
            select(
                Share.id,
                Share.endpoint,
                Share.status,
                Share.remote_url,
                Share.remote_id,
                Share.error,
                Share.not_before,
                Article.title,
            )
            .join(Article, Article.id == Share.article_id)
            .where(Share.id > self.share_floor, Share.status.in_(("pending", "sent", "failed", "uncertain")))
            .order_by(Share.id)
        ).all()
        now = utcnow()
        lines = []
        for share_id, endpoint, status, remote_url, remote_id, error, not_before, title in rows:
            state = _share_state(status, endpoint in disabled, not_before, now)
            if state is None or self.shares.get(share_id) == state:
                continue
            self.shares[share_id] = state
            if state == "sent":
                where = remote_url or self._destination(endpoint, remote_id)
                lines.append(_line("posted", f"{endpoint}: {_title(title)}  {where}"))
            elif state == "held":
                why = (
                    f"endpoint disabled (`syndicate endpoint enable {endpoint}`)"
                    if endpoint in disabled
                    else f"until {_when(not_before)}"
                )
                lines.append(_line("held", f"{endpoint}: {_title(title)} {why}"))
            else:
                retry = f"; `syndicate share retry {share_id}`"
                lines.append(_line(f"post {state}", f"{endpoint}: {_title(title)}: {_short(error)}{retry}"))
        return lines

    def _destination(self, endpoint: str, remote_id: str | None) -> str:
        """Where a post without a URL went: the file of a ``file`` endpoint, else the network's id."""
        try:
            path: Any = getattr(self.config.endpoint(endpoint), "path", None)
        except KeyError:
            path = None
        if path:
            return str(path)
        return f"id {remote_id}" if remote_id else ""


def _share_state(status: str, disabled: bool, not_before: datetime | None, now: datetime) -> str | None:
    """``sent``, ``failed``, ``uncertain``, ``held`` (pending and not going out soon) or None (in flight)."""
    if status != "pending":
        return status
    if disabled:
        return "held"
    if not_before is not None and (not_before - now).total_seconds() > HELD_AFTER_SECONDS:
        return "held"
    return None


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment is not None else "later"


def _line(event: str, text: str) -> str:
    return f"{datetime.now():%H:%M:%S}  {event:<12} {text}"
