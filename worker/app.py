"""The Celery app: broker, queues, reliability settings and the per-source beat schedule.

``celery -A worker.app`` finds the module-level ``app``; everything else calls :func:`create_app`.
Reliability choices (see ../shared/design/ARCHITECTURE.md):

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a worker killed mid-task leaves the message
  unacked, so Redis hands it to another worker; every task is idempotent for that reason.
* ``worker_prefetch_multiplier = 1``: a slow page does not hold other tasks hostage.
* Time limits and retry countdowns stay well below the Redis ``visibility_timeout``, otherwise the
  broker would redeliver a message that is still running or waiting.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from kombu import Exchange, Queue

from config import Config, Settings, get_settings

MAX_RETRY_COUNTDOWN = 900
QUEUES = ("crawl", "fetch", "render", "share")


def create_app(settings: Settings | None = None) -> Celery:
    """Build the Celery app for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    visibility = settings.visibility_timeout
    # A message is redelivered once unacked for `visibility` seconds: nothing may run or wait that long.
    hard_limit = settings.task_time_limit
    app = Celery("syndicate", include=["worker.tasks"])
    app.conf.update(
        broker_url=settings.effective_redis_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": visibility,
            # Look for abandoned (unacked, timed-out) messages every few seconds rather than kombu's
            # default of ~100 s; one ZRANGEBYSCORE per sweep.
            "unacked_restore_interval": min(10, max(1, visibility // 10)),
            "unacked_restore_throttle": 1,
            # The restore runs under a Redis mutex that a worker killed while holding it keeps for
            # this long (kombu's default: 300 s, during which nobody restores anything); a restore
            # pass takes milliseconds.
            "unacked_mutex_expire": 30,
        },
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=int(hard_limit * 0.8),
        task_time_limit=hard_limit,
        syndicate_max_retry_countdown=min(MAX_RETRY_COUNTDOWN, visibility // 2),
        task_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        # Task events cost ~0.5 ms per send; Flower switches them on in the workers it watches.
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        task_queues=[Queue(name, Exchange(name), routing_key=name) for name in QUEUES],
        task_default_queue="fetch",
        task_routes={
            "syndicate.crawl_source": {"queue": "crawl"},
            "syndicate.process_article": {"queue": "fetch"},
            "syndicate.render_feed": {"queue": "render"},
            # Sent by the sweep (which rides this queue too): it stays short, so a backlog of fetches
            # does not hold the story of an article a dead worker left, nor pile up its re-sends.
            "syndicate.assign_story": {"queue": "render"},
            "syndicate.plan_shares": {"queue": "share"},
            "syndicate.deliver_share": {"queue": "share"},
            "syndicate.noop": {"queue": "fetch"},
        },
        beat_schedule={},
        # Celery's persistent scheduler plus beat's heartbeat (see worker/ops/heartbeat.py).
        beat_scheduler="worker.ops.heartbeat:HeartbeatScheduler",
    )
    return app


def beat_schedule(config: Config, source_ids: dict[str, int]) -> dict[str, dict[str, object]]:
    """One beat entry per enabled source that is crawled (not ``push``), at the source's own interval."""
    return {
        f"crawl:{source.name}": {
            "task": "syndicate.crawl_source",
            "schedule": timedelta(seconds=source.schedule),
            "args": (source_ids[source.name],),
            "options": {"expires": max(source.schedule, 30)},
        }
        for source in config.sources
        if source.enabled and source.kind != "push" and source.name in source_ids
    }


app = create_app()
