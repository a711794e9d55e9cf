"""Readable task arguments for Flower and the worker log: ``argsrepr`` set on every task sent.

Flower listed ``syndicate.process_article`` with arguments ``(1,)``: nothing an operator can map to a
story. Celery sends ``argsrepr`` (a message header) as the "args" Flower shows and the worker logs,
while the task still receives its ids. One ``before_task_publish`` handler fills it in for every send
(``.delay``, ``.apply_async``, beat, the sweep, the CLI), so no call site has to remember:

- ``crawl_source(3)`` → ``(3,) source valley``
- ``process_article(42)``, ``plan_shares(42)`` → ``(42,) article "Title" https://…`` (the URL alone
  before the article has a title)
- ``deliver_share(7)`` → ``(7,) share to mastodon-main of article 42 "Title"``
- ``render_feed("all")``, ``publish_websub("all")`` → ``('all',) feed all``

Names come from one primary-key query in the process's own runtime (never one built for this: a
process without a runtime keeps Celery's plain ids). Anything going wrong leaves the ids; labelling
never breaks a send. Labels are masked like log lines (``?token=…``, URL passwords, configured
secrets) and clipped to :data:`LABEL_CHARS`.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals
from sqlalchemy import select

from worker.logs import redact
from worker.runtime import installed_runtime
from worker.store.models import Article, Share, Source

log = logging.getLogger(__name__)

LABEL_CHARS = 200
ARTICLE_TASKS = frozenset({"syndicate.process_article", "syndicate.plan_shares"})
FEED_TASKS = frozenset({"syndicate.render_feed", "syndicate.publish_websub"})


def _article(session: Any, article_id: int, name: str = "article") -> str:
    row = session.execute(select(Article.title, Article.url).where(Article.id == article_id)).first()
    if row is None:
        return f"{name} (not found)"
    title, url = row
    return f'{name} "{title}" {url}' if title else f"{name} {url}"


def describe(task: str, args: tuple[Any, ...]) -> str | None:
    """What the task's arguments name, in words (``None``: nothing to add to the ids)."""
    if task in FEED_TASKS and args:
        return f"feed {args[0]}"
    if (
        not args
        or not isinstance(args[0], int)
        or task
        not in ARTICLE_TASKS
        | {
            "syndicate.crawl_source",
            "syndicate.deliver_share",
        }
    ):
        return None
    runtime = installed_runtime()
    if runtime is None:
        return None
    with runtime.session() as session:
        if task in ARTICLE_TASKS:
            return _article(session, args[0])
        if task == "syndicate.crawl_source":
            name = session.scalar(select(Source.name).where(Source.id == args[0]))
            return f"source {name}" if name else None
        found = session.execute(select(Share.endpoint, Share.article_id).where(Share.id == args[0])).first()
        if found is None:
            return None
        endpoint, article_id = found
        return f"share to {endpoint} of {_article(session, article_id, f'article {article_id}')}"


def on_before_task_publish(sender: Any = None, body: Any = None, headers: Any = None, **_: Any) -> None:
    """``before_task_publish``: put the readable label into the message's ``argsrepr`` header."""
    if not isinstance(headers, dict) or not isinstance(body, tuple) or not body:
        return
    args = tuple(body[0] or ())
    try:
        label = describe(str(sender), args)
    except Exception as exc:  # labels are a courtesy: a send never fails for one
        log.debug("no readable label for %s%r: %s", sender, args, exc)
        return
    if label:
        # Flower shows it as is: token query values and URL passwords masked as in the logs.
        text = redact(f"{args!r} {label}")
        headers["argsrepr"] = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def connect_signals() -> None:
    """Connect the handler (idempotent)."""
    signals.before_task_publish.connect(on_before_task_publish, weak=False, dispatch_uid="syndicate-argsrepr")
