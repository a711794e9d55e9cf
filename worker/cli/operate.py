"""Operator actions: ``retry`` failed work, ``source pause/resume``, ``endpoint enable/disable``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from worker import actions
from worker.cli import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
)
from worker.cli.common import (
    check_endpoint,
    check_source,
    emit,
    load,
    no_endpoint,
    progress,
    require_redis,
)
from worker.cli.db import prepare_database
from worker.outbox.endpoints import set_endpoint_enabled
from worker.runtime import get_runtime
from worker.tasks import deliver_share, process_article


def cmd_retry(args: argparse.Namespace) -> int:
    """Retry failed work: shares by id, by endpoint or all failed ones; failed articles by id or all."""
    if not (args.share or args.article or args.endpoint or args.all_failed):
        print(
            "nothing selected: give --share ID, --article ID, --endpoint NAME or --all-failed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    settings, config = load(args)
    if args.endpoint is not None and (refused := check_endpoint(config, args.endpoint)) is not None:
        return refused
    if not args.dry_run:
        require_redis(settings)
    prepare_database(settings, config)

    rt = get_runtime()
    statuses = actions.RETRYABLE_SHARE_STATUSES if args.uncertain else actions.BULK_SHARE_STATUSES
    with rt.session() as session:
        shares = list(args.share or [])
        if args.endpoint is not None or args.all_failed:
            shares += actions.failed_share_ids(session, endpoint=args.endpoint, statuses=statuses)
        articles = list(args.article or [])
        if args.all_failed:
            articles += actions.failed_article_ids(session)
    shares, articles = list(dict.fromkeys(shares)), list(dict.fromkeys(articles))
    if args.dry_run:
        for share_id in shares:
            emit(f"would retry share {share_id}")
        for article_id in articles:
            emit(f"would retry article {article_id}")
        emit(f"{len(shares)} shares and {len(articles)} articles would be retried")
        return EXIT_OK
    return _retry(args, rt, shares, articles)


def _retry(args: argparse.Namespace, rt: Any, shares: list[int], articles: list[int]) -> int:
    """Reset and enqueue the selected shares and articles; exit 1 if any named one was not retryable."""

    named_shares, named_articles = set(args.share or []), set(args.article or [])
    refused = 0
    done_shares = done_articles = 0
    work = [("share", i) for i in shares] + [("article", i) for i in articles]
    for what, item_id in progress(args, work, total=len(work), desc="retry", unit="item"):
        if what == "share":
            ok = actions.retry_share(rt, item_id)
        else:
            with rt.session() as session:
                ok = actions.retry_article(session, item_id)
        if not ok:
            if item_id in (named_shares if what == "share" else named_articles):
                state = "failed or uncertain" if what == "share" else "failed"
                emit(f"error: {what} {item_id} is not {state} (or does not exist)", err=True)
                refused += 1
            continue
        # Enqueued after the commit above, as every stage does.
        if what == "share":
            deliver_share.delay(item_id)
            done_shares += 1
        else:
            process_article.delay(item_id)
            done_articles += 1
        emit(f"{what} {item_id}: pending again, enqueued")
    emit(f"retried {done_shares} shares and {done_articles} articles")
    return EXIT_ERROR if refused else EXIT_OK


def cmd_source(args: argparse.Namespace) -> int:
    """Pause or resume a source: a paused source is not crawled by beat nor by a crawl task."""
    settings, config = load(args)
    if (refused := check_source(config, args.name)) is not None:
        return refused
    prepare_database(settings, config)

    with get_runtime().session() as session:
        if args.source_command == "pause":
            state = actions.pause_source(session, args.name, args.reason)
        else:
            state = actions.resume_source(session, args.name)
    if args.source_command == "pause":
        since = f"{state.paused_at:%Y-%m-%d %H:%M:%S} UTC" if state.paused_at else "now"
        verb = "paused" if state.changed else "was already paused"
        reason = f" ({state.reason})" if state.reason else ""
        print(
            f"source {args.name} {verb} since {since}{reason}; "
            f"`syndicate source resume {args.name}` undoes it"
        )
    elif state.changed:
        print(
            f"source {args.name} resumed; beat crawls it on schedule (`syndicate crawl {args.name}` for now)"
        )
    else:
        print(f"source {args.name} was not paused")
    return EXIT_OK


def cmd_endpoint(args: argparse.Namespace) -> int:
    """Enable or disable an endpoint (a disabled endpoint keeps its pending shares)."""
    settings, config = load(args)
    prepare_database(settings, config)

    try:
        pending = set_endpoint_enabled(get_runtime(), args.name, args.endpoint_command == "enable")
    except KeyError:
        return no_endpoint(config, args.name)
    if args.endpoint_command == "enable":
        for share_id in pending:
            deliver_share.delay(share_id)
        print(f"endpoint {args.name} enabled; {len(pending)} pending shares enqueued")
    else:
        print(f"endpoint {args.name} disabled; its shares wait until `syndicate endpoint enable {args.name}`")
    return 0
