"""The file endpoint in the outbox: a worker that died after its line went out writes nothing twice.

Real SQLite, real Redis and the real file endpoint (worker/share/file.py), in process, on the outbox
tests' fixtures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from tests.pipeline import test_outbox
from tests.pipeline.test_outbox import Outbox, file_endpoint
from worker.outbox.delivery import deliver_share
from worker.outbox.leases import stale_shares
from worker.outbox.view import share_article_view
from worker.share import idempotency_key
from worker.store.models import Article, utcnow

# The outbox tests' fixtures, shared rather than copied.
make_outbox = test_outbox.make_outbox
redis_url = test_outbox.redis_url


def test_a_worker_that_died_after_writing_its_line_is_not_written_twice(
    make_outbox: Callable[..., Outbox], tmp_path: Path
) -> None:
    outbox = make_outbox([file_endpoint()])
    article_id = outbox.article()
    share_id = outbox.plan_one(article_id, "archive")
    # A worker claimed the share (the claim is committed before the write), appended its line and died
    # before committing "sent"; its claim is older than the lease by now.
    outbox.set(share_id, status="sending", claimed_at=utcnow() - timedelta(seconds=outbox.rt.claim_lease + 5))
    with outbox.rt.session() as session:
        article = session.get(Article, article_id)
        assert article is not None
        view = share_article_view(article)
    key = idempotency_key(view, "archive")
    endpoint = outbox.rt.endpoint("archive")
    endpoint.publish(endpoint.render(view), key)
    path = tmp_path / "archive.jsonl"
    assert len(path.read_bytes().splitlines()) == 1

    assert stale_shares(outbox.rt, timedelta(minutes=10)) == [share_id]
    assert deliver_share(outbox.rt, share_id) == "sent"
    row = outbox.share(share_id)
    assert (row.status, row.remote_id) == ("sent", key)
    assert [json.loads(line)["id"] for line in path.read_bytes().splitlines()] == [key]
    # And once more, as a redelivered task would: still one line.
    assert deliver_share(outbox.rt, share_id) == "sent"
    assert len(path.read_bytes().splitlines()) == 1
