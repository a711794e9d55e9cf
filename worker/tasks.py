"""Thin Celery tasks: take ids, call a plain pipeline function, retry what is retryable, enqueue the next.

Every task here is idempotent and runs with ``acks_late`` (see :mod:`worker.app`). The next stage is
enqueued only after the current stage's transaction committed (the pipeline functions commit before
they return), so a worker never receives an id it cannot see yet.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable
from functools import lru_cache, partial
from typing import Any, NoReturn

import redis
from celery import Task
from sqlalchemy import select

from worker import crawl, metrics, process, redisclient, render, storage, websub
from worker.app import app
from worker.errors import Deferred, GaveUp, HostBusy, Rescheduled, Retryable
from worker.ops import heartbeat, tasklabels
from worker.ops import sweep as sweeping
from worker.outbox import delivery, planning, settling
from worker.outbox.retry import requeue_countdown
from worker.runtime import get_runtime
from worker.store.models import Article, Share
from worker.stories import assign

log = logging.getLogger(__name__)
# Every process that sends tasks imports this module: readable task arguments for Flower from here on.
tasklabels.connect_signals()
# Before a worker boots (Celery looks for heartbeat receivers then): a worker imports this module,
# the app's ``include``, while it sets up, as it does the sweep's handlers (worker/ops/sweep.py).
heartbeat.connect_signals()

MAX_RETRIES = 5
# A render whose export failed (a read-only or full disk) retries at least this often: the retry is a
# cheap re-publish, and the feed's readers wait for it. After its retries the sweep takes over.
RENDER_RETRY_MAX = 10.0


class PipelineTask(Task):
    """Base task: retries :class:`~worker.errors.Retryable` errors with backoff, records the rest."""

    abstract = True
    acks_late = True
    throws = (GaveUp,)
    max_retries = MAX_RETRIES
    # The longest wait between retries (None: the app's syndicate_max_retry_countdown).
    retry_cap: float | None = None

    def retry_countdown(self, exc: BaseException) -> float:
        """Honour the remote's Retry-After, else exponential backoff, both with jitter; capped.

        Jitter spreads tasks that failed together (one partner's outage) so they do not all come
        back in the same instant; it only ever adds to a Retry-After, never waits less than asked.
        """
        hinted = getattr(exc, "retry_after", None) or 0.0
        backoff = 2.0 ** (self.request.retries + 1) * random.uniform(0.75, 1.25)
        countdown = max(hinted + random.uniform(0.0, 0.5 + hinted * 0.1), backoff)
        cap = self.app.conf.syndicate_max_retry_countdown
        return float(min(countdown, cap if self.retry_cap is None else min(cap, self.retry_cap)))

    def run_stage(self, func: Any, *args: Any, on_give_up: Any = None) -> Any:
        """Call a pipeline function; turn Retryable errors into Celery retries.

        :class:`~worker.errors.HostBusy` (a partner host's politeness budget is spent) is no
        failure: the same task is sent again with a countdown to the host's next turn (plus a
        little jitter, so that the tasks of one host do not all ask in the same instant), keeping
        the retries it used so far and using none, and the worker never sleeps. :class:`Rescheduled`
        then ends this run.
        """
        try:
            result = func(get_runtime(), *args)
        except HostBusy as busy:
            wait = max(busy.retry_after or 0.0, 0.0)
            wait += random.uniform(0.0, min(1.0, 0.1 + wait * 0.1))
            countdown = min(wait, self.app.conf.syndicate_max_retry_countdown)
            # retries: a URL that timed out keeps its backoff (and its end) across its host's busy turns.
            options = {"countdown": countdown, "retries": self.request.retries}
            self.apply_async(args, dict(self.request.kwargs or {}), **options)
            raise Rescheduled(f"{busy}; rescheduled in {countdown:.2f}s") from None
        except Retryable as exc:
            # Celery's retry() re-raises ``exc`` itself once retries run out, so decide here.
            if self.request.retries >= self.max_retries:
                self.give_up(args, exc, on_give_up)
            raise self.retry(exc=exc, countdown=self.retry_countdown(exc)) from exc
        except Exception as exc:
            # A full disk (SQLite/PostgreSQL "full", ENOSPC/EDQUOT from a feed export) is no failure of
            # this work: counted, shown in /healthz and status, and sent again without using a retry.
            if not storage.is_storage_full(exc):
                raise
            storage.note_refused(_redis(), self.name, exc)
            countdown = min(storage.RETRY_AFTER_SECONDS, self.app.conf.syndicate_max_retry_countdown)
            self.apply_async(args, dict(self.request.kwargs or {}), countdown=countdown)
            raise Rescheduled(
                f"storage full: {storage.describe(exc)}; rescheduled in {countdown:.0f}s"
            ) from None
        storage.forget_refusal(_redis, self.name)  # only if this process saw one: no Redis call otherwise
        return result

    def give_up(self, args: tuple[Any, ...], exc: BaseException, on_give_up: Any = None) -> NoReturn:
        """Record the final failure (``on_give_up``), then end the task in Celery's FAILURE state.

        Raising :class:`GaveUp` rather than returning makes Flower and the task events show the
        task as failed, with the reason. The message is still acked: Celery acks a task that raised
        (``task_acks_on_failure_or_timeout``), and ``task_reject_on_worker_lost`` only concerns a
        worker process that died, so a given-up task is never delivered again.
        """
        if on_give_up is not None:
            on_give_up(get_runtime(), *args, exc)
        reason = f"gave up after {self.max_retries} retries: {type(exc).__name__}: {exc}"
        log.error("%s%r %s", self.name, args, reason)
        raise GaveUp(reason) from exc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task; a run that rescheduled itself (see :meth:`run_stage`) returns None."""
        try:
            with metrics.task_run(self, args, kwargs):  # log ids, outcome and time counted, one flush
                return super().__call__(*args, **kwargs)
        except Rescheduled as done:
            log.info("%s%r: %s", self.name, args, done)
            return None


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    client = get_runtime().redis_client
    return client if client is not None else redisclient.connect(get_runtime().settings.effective_redis_url)


@app.task(bind=True, base=PipelineTask, name="syndicate.crawl_source")
def crawl_source(self: PipelineTask, source_id: int) -> int:
    """Discover a source's articles and enqueue each one that needs processing.

    The crawl lists its source's pending articles too; one a live message already covers (queued,
    held for a busy host's turn, running) is left to it, so that no page is fetched twice.
    """
    stage = partial(crawl.crawl_source, uncovered=partial(sweeping.not_in_flight, "process"))
    ids = self.run_stage(stage, source_id) or []
    for article_id in ids:
        process_article.delay(article_id)
    return len(ids)


@app.task(bind=True, base=PipelineTask, name="syndicate.process_article")
def process_article(self: PipelineTask, article_id: int) -> str | None:
    """Fetch, normalize and store one article; then schedule feed renders and shares."""
    outcome = self.run_stage(process.process_article, article_id, on_give_up=process.mark_article_failed)
    metrics.count_processed(outcome)
    if outcome is None:
        return None
    if outcome.status == "failed":
        reason = _recorded_error(Article, article_id)
        if reason.startswith("gave up"):  # its attempts ran out (see process.note_failed_attempt): say so
            log.error("%s%r %s", self.name, (article_id,), reason)
        raise GaveUp(f"article {article_id} failed: {reason}")
    feeds = list(outcome.feeds)
    if outcome.status == "ready":
        # Its story first: feeds and the share planner read article.story_id.
        placed = self.run_stage(assign.assign_article, article_id, outcome.changed)
        feeds += [name for name in placed.feeds if name not in feeds]
    for feed_name in feeds:
        schedule_render(feed_name)
    if outcome.share:
        plan_shares.delay(article_id)
    return str(outcome.status)


@app.task(bind=True, base=PipelineTask, name="syndicate.assign_story")
def assign_story(self: PipelineTask, article_id: int) -> int | None:
    """Put a ready article that has no story in one (the sweep sends those a dead worker left)."""
    placed = self.run_stage(assign.assign_article, article_id)
    for feed_name in placed.feeds:
        schedule_render(feed_name)
    return placed.story_id


def schedule_render(feed_name: str) -> None:
    """Render ``feed_name`` because an article in it changed: at once, and bursts collapsed.

    The decision (and the debounce keys in Redis) is :func:`worker.render.debounce`'s; this sends the
    ``render_feed`` task it asks for.
    """
    trailing_id = str(uuid.uuid4())
    action, countdown = render.debounce(feed_name, _redis(), trailing_id)
    if action == render.RENDER_NOW:
        render_feed.delay(feed_name)
    elif action == render.RENDER_LATER:
        render_feed.apply_async((feed_name,), countdown=countdown, task_id=trailing_id)


def schedule_renders(feed_names: Iterable[str]) -> None:
    """:func:`schedule_render` for each feed: what the CLI and the API call after an operator's change
    (a story merge or split) so that the merged feeds show it."""
    for feed_name in dict.fromkeys(feed_names):
        schedule_render(feed_name)


@app.task(bind=True, base=PipelineTask, name="syndicate.render_feed", retry_cap=RENDER_RETRY_MAX)
def render_feed(self: PipelineTask, feed_name: str) -> bool:
    """Re-render one feed in every format, publish it, and ping the WebSub hub when it changed."""
    client = _redis()
    render.begin_render(feed_name, client, self.request.id)
    started = time.monotonic()
    changed = bool(self.run_stage(render.render_and_publish, feed_name, client))
    render.record_render_time(feed_name, client, time.monotonic() - started)
    if changed and get_runtime().config.websub.hub:
        publish_websub.delay(feed_name)
    return changed


@app.task(bind=True, base=PipelineTask, name="syndicate.publish_websub", queue="render")
def publish_websub(self: PipelineTask, feed_name: str) -> bool:
    """Tell the WebSub hub that every format of ``feed_name`` changed (retried while the hub is down)."""
    return bool(self.run_stage(websub.publish_feed, feed_name))


@app.task(bind=True, base=PipelineTask, name="syndicate.plan_shares")
def plan_shares(self: PipelineTask, article_id: int) -> int:
    """Create the outbox rows for an article and enqueue their delivery."""
    ids = self.run_stage(planning.plan_shares, article_id) or []
    for share_id in ids:
        deliver_share.delay(share_id)
    return len(ids)


@app.task(bind=True, base=PipelineTask, name="syndicate.deliver_share")
def deliver_share(self: PipelineTask, share_id: int) -> str | None:
    """Publish one outbox row to its endpoint, exactly once (see :mod:`worker.outbox`).

    A share that must wait (pacing, quiet hours, rate limits, the retry schedule kept in the
    database) is re-sent to the queue with a countdown instead of sleeping in the worker; a
    countdown stays under the visibility timeout and longer waits simply hop.
    """
    try:
        status = str(self.run_stage(delivery.deliver_share, share_id))
    except Deferred as deferred:
        countdown = requeue_countdown(deferred.seconds, self.app.conf.syndicate_max_retry_countdown)
        deliver_share.apply_async((share_id,), countdown=countdown)
        return f"deferred {countdown:.1f}s: {deferred.reason}"
    except LookupError:
        # Dropped before it was sent: two stories became one and the other's share is the post.
        log.info("share %s is gone (its story was merged into one with its own share)", share_id)
        return "gone"
    if status == "failed":
        raise GaveUp(f"share {share_id} failed: {_recorded_error(Share, share_id)}")
    return status


def _recorded_error(model: type[Article] | type[Share], row_id: int) -> str:
    """The failure reason stored on an article or share row (what the status page shows too)."""
    with get_runtime().session() as session:
        error = session.scalar(select(model.error).where(model.id == row_id))
        return error or "no reason recorded"


@app.task(name="syndicate.settle_uncertain", acks_late=True, queue="render")
def settle_uncertain() -> int:
    """Deliver (that is, look up again) uncertain shares whose scheduled lookup was lost; beat runs it.

    Each ``deliver_share`` of an uncertain share on a network with a lookup settles it (see
    :func:`worker.outbox.settling.settle_share`). Like the sweep it rides the short render queue.
    """
    ids = settling.due_uncertain(get_runtime())
    for share_id in ids:
        deliver_share.delay(share_id)
    return len(ids)


@app.task(name="syndicate.noop", acks_late=True)
def noop(n: int = 0) -> int:
    """Does nothing: the floor of the task machinery, for benchmarks and health checks."""
    return n


@app.task(name="syndicate.sweep", acks_late=True, queue="render")
def sweep() -> dict[str, int]:
    """Re-enqueue every stage's orphaned work (see :mod:`worker.ops.sweep`); beat runs it every 15 s.

    It rides the render queue, which stays short, so a backlog of fetches does not delay recovery.
    """
    found = sweeping.sweep(get_runtime(), _redis())
    if found is None:
        return {"skipped": 1}  # another sweep holds the lock and enqueues the same orphans
    for source_id in found.crawls:
        crawl_source.delay(source_id)
    for article_id in found.articles:
        process_article.delay(article_id)
    for article_id in found.plans:
        plan_shares.delay(article_id)
    for article_id in found.stories:
        assign_story.delay(article_id)
    for share_id in found.shares:
        deliver_share.delay(share_id)
    for feed_name in found.renders:
        render_feed.delay(feed_name)
    return found.counts()
