"""The share outbox: which endpoints get an article, when, and how each post is sent exactly once.

Planning (:func:`plan_shares`) makes one ``shares`` row per (article, endpoint) whose routing
rules select the article, except for the back catalogue: an endpoint announces only articles
first seen after it was added and not found by a source's first crawl, unless they were
published within its ``max_age`` (or it sets ``back_catalogue``); a pushed article dated well
before the endpoint was added is old news too. Each (article, endpoint) left out is kept in
``share_skips`` with its reason, so status can say what was not shared and why.
``syndicate share send`` shares an older article on purpose.

Stories: an article of a story shares through it, one share per (story, endpoint) (the unique
index ``uq_shares_story_endpoint``); its other versions are skipped as ``same_story``. The
story's share waits ``story_window`` after the story began, and its claim picks the version that
fits the endpoint best (:func:`best_version`). A version that arrives after the post never posts
again; Mastodon's ``story_edit`` edits the post to name it (:func:`edit_story_post`).

Delivery (:func:`deliver_share`) is exactly-once by construction:

1. Gates, none of which sleeps: the endpoint is disabled (the share waits), the share's
   ``not_before`` (delay after publish, retry schedule), quiet hours, the network's own rate-limit
   block and our pacing (``min_interval``, ``max_per_hour``: a Redis script shared by every worker
   process). A closed gate raises :class:`~worker.errors.Deferred` and the task re-enqueues itself with a
   countdown; other endpoints are never held up. A paced endpoint drains its backlog oldest first.
2. A ``sending`` claim is committed before the request.
3. The answer is committed: ``sent`` (with the remote id and URL), ``failed`` (permanent; an
   :class:`~worker.errors.EndpointDisabled` also disables the endpoint), back to ``pending`` on
   the retry schedule, or ``uncertain`` when the request may have reached a network that offers
   neither idempotency nor a lookup.

A share found ``sending`` belonged to a worker that died mid-send once its sending lease in Redis
expired (the live holder refreshes it; :class:`~worker.sendslots.SendingLeases`, about 20 s) or,
without Redis, once the claim is older than the task time limit: idempotent endpoints send again
with the same key, others look their post up, and where they cannot the share becomes
``uncertain`` for an operator instead of posting twice.

One module per concern; importers name the module (``from worker.outbox.delivery import deliver_share``):

* :mod:`~worker.outbox.planning`: routing rules, the back catalogue, share rows (:func:`plan_shares`);
* :mod:`~worker.outbox.skips`: ``share_skips``, why an article was not shared;
* :mod:`~worker.outbox.endpoints`: disabling and enabling an endpoint (rows: :mod:`worker.store.endpoints`);
* :mod:`~worker.outbox.view`: the stored article as an endpoint sees it;
* :mod:`~worker.outbox.pacing`: quiet hours, paced endpoints (Redis side: :class:`~worker.sendslots.Pacer`);
* :mod:`~worker.outbox.leases`: sending leases and the shares a sweep delivers again;
* :mod:`~worker.outbox.claiming`: the ``sending`` claim and the best version of a story;
* :mod:`~worker.outbox.delivery`: :func:`deliver_share`, the answer mapped to an outcome;
* :mod:`~worker.outbox.outcome`: recording an outcome, looking a post up;
* :mod:`~worker.outbox.retry`: the delivery-side retry policy (schedule, lookups, edits);
* :mod:`~worker.outbox.settling`: ``uncertain`` shares settled by a lookup;
* :mod:`~worker.outbox.storyedit`: a story's post edited to name later versions;
* :mod:`~worker.outbox.operator`: what an operator asks (recent shares, preview, retry, mark sent).
"""
