"""Share commands: ``share preview``, ``list``, ``send``, ``retry``, ``mark-sent``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from worker.actions import retry_share
from worker.cli import (
    EXIT_USAGE,
)
from worker.cli.common import (
    load,
    no_endpoint,
    require_redis,
)
from worker.cli.db import prepare_database
from worker.errors import Deferred
from worker.outbox import delivery
from worker.outbox.operator import find_article, mark_sent, preview_article, recent_shares
from worker.outbox.planning import plan_shares
from worker.runtime import get_runtime
from worker.store.models import Share
from worker.tasks import deliver_share


def cmd_share_preview(args: argparse.Namespace) -> int:
    """Print exactly what each endpoint would receive for an article; nothing is sent."""
    settings, config = load(args, secrets=False)
    prepare_database(settings, config)

    if args.endpoint is not None and args.endpoint not in {e.name for e in config.endpoints}:
        return no_endpoint(config, args.endpoint)
    try:
        previews = preview_article(get_runtime(), args.article, args.endpoint)
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(previews, indent=2, ensure_ascii=False))
        return 0
    for entry in previews:
        limit = f"/{entry['limit']}" if entry.get("limit") else ""
        print(f"== {entry['endpoint']} ({entry['kind']})" + (f"  [{entry['note']}]" if entry["note"] else ""))
        if "error" in entry:
            print(f"   cannot render: {entry['error']}")
            continue
        print(f"-- text ({entry['length']}{limit}):")
        print(entry["text"])
        if entry["image"]:
            print(f"-- image: {entry['image']}")
        print("-- payload:")
        print(json.dumps(entry["payload"], indent=2, ensure_ascii=False))
        print()
    return 0


def cmd_share_list(args: argparse.Namespace) -> int:
    """List the latest shares: status, attempts, where the post landed, why one failed."""
    settings, config = load(args, secrets=False)
    prepare_database(settings, config)

    with get_runtime().session() as session:
        rows = recent_shares(session, endpoint=args.endpoint, status=args.status, limit=args.limit)
    # An endpoint no longer configured still lists the shares it made; a name never seen is a typo.
    if not rows and args.endpoint is not None and args.endpoint not in {e.name for e in config.endpoints}:
        return no_endpoint(config, args.endpoint)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no shares")
    for row in rows:
        where = row["remote_url"] or row["remote_id"] or ""
        print(
            f"{row['id']:>6}  {row['endpoint']:<16} {row['status']:<9} article {row['article_id']:<6} "
            f"{row['title'][:50]}"
        )
        if where:
            print(f"        -> {where}")
        if row["error"] and row["status"] != "sent":
            print(f"        {row['error'][:300]}")
    return 0


def cmd_share_send(args: argparse.Namespace) -> int:
    """Share an article to one endpoint on purpose, even if it is back catalogue."""
    settings, config = load(args)
    prepare_database(settings, config)

    rt = get_runtime()
    try:
        config.endpoint(args.endpoint)
    except KeyError:
        print(f"error: no endpoint named {args.endpoint!r}", file=sys.stderr)
        return EXIT_USAGE
    with rt.session() as session:
        article = find_article(session, args.article)
        article_id = article.id if article is not None and article.status == "ready" else None
    if article_id is None:
        print(f"error: no ready article {args.article!r}", file=sys.stderr)
        return 1
    ids = [
        i
        for i in plan_shares(rt, article_id, force=[args.endpoint])
        if _share_endpoint(rt, i) == args.endpoint
    ]
    if not ids:
        print(f"article {article_id} was already shared to {args.endpoint} (see `syndicate status`)")
        return 0
    if args.inline:
        print(f"share {ids[0]}: {deliver_inline(rt, ids[0])}")
        return 0

    deliver_share.delay(ids[0])
    print(f"share {ids[0]} of article {article_id} to {args.endpoint} enqueued")
    return 0


def _share_endpoint(rt: Any, share_id: int) -> str:
    with rt.session() as session:
        share = session.get(Share, share_id)
        return share.endpoint if share is not None else ""


def cmd_share_retry(args: argparse.Namespace) -> int:
    """Put a failed or uncertain share back in the outbox (Redis checked first: nothing half done)."""
    settings, config = load(args)
    require_redis(settings)
    prepare_database(settings, config)

    if not retry_share(get_runtime(), args.share):
        print(f"error: share {args.share} is not failed or uncertain", file=sys.stderr)
        return 1

    deliver_share.delay(args.share)
    print(f"share {args.share} is pending again")
    return 0


def cmd_share_mark_sent(args: argparse.Namespace) -> int:
    """Record that an uncertain share did reach the network (you checked)."""
    settings, config = load(args)
    prepare_database(settings, config)

    if not mark_sent(get_runtime(), args.share, args.url):
        print(f"error: share {args.share} cannot be marked sent", file=sys.stderr)
        return 1
    print(f"share {args.share} marked sent")
    return 0


def deliver_inline(rt: Any, share_id: int) -> str:
    """Deliver one share in this process; a share that must wait stays pending for the workers."""

    try:
        return delivery.deliver_share(rt, share_id)
    except Deferred as deferred:
        print(f"share {share_id}: {deferred}", file=sys.stderr)
        return "pending"
