"""The feeds package stays pure: importing it must not pull in Celery, SQLAlchemy or worker."""

from __future__ import annotations

import subprocess
import sys

import feeds


def test_public_api_is_exported() -> None:
    for name in ("FeedItem", "FeedMeta", "RenderedFeed", "build_feed", "render_all", "FORMATS"):
        assert hasattr(feeds, name)
    for name in ("is_not_modified", "cache_headers", "publish", "WebSubError"):
        assert hasattr(feeds, name)


def test_importing_feeds_loads_no_worker_celery_or_sqlalchemy() -> None:
    code = (
        "import sys, feeds, feeds.build, feeds.http, feeds.websub, feeds.extensions\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'celery', 'sqlalchemy', 'worker'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
