"""The delivery-side retry policy, in one place: when a share is tried again and when it is given up.

* a failed attempt: the retry schedule (:data:`RETRY_SCHEDULE`, or the ``share_retry_schedule``
  setting), a network's 429 with ``Retry-After`` waited out without using an attempt
  (:func:`retry_later`);
* a lost answer on a network that can look posts up: looked up after :data:`SETTLE_FIRST_CHECK`,
  then after half the share's age (:func:`settle_wait`), proven absent after :func:`absent_after`;
* an edit of a story's post the network could not take: :func:`edit_wait`, given up after
  :data:`EDIT_GIVE_UP`;
* a share that must wait goes back on the queue with a little jitter (:func:`requeue_countdown`).

The other retries live with what they retry: a stage's retryable errors (``PipelineTask`` in
``worker/tasks.py``), a fetch's backoff per URL (``worker/fetch``), Redis calls
(``worker/redisclient.py``), and an operator's retry (``worker/actions.py``).
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING

from worker.errors import Deferred, TransientShareError
from worker.http import DEADLINE_FACTOR
from worker.outbox.outcome import finish, short
from worker.share import Endpoint
from worker.store.models import utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime


# Seconds to wait after the 1st, 2nd, ... failed attempt (the Standard Webhooks schedule): long
# enough to outlast a real outage. Kept in the database (``not_before``), so a restart or a lost
# message does not cut it short.
RETRY_SCHEDULE = (5, 60, 300, 1800, 7200, 18000, 36000, 86400)


def retry_later(rt: Runtime, share_id: int, endpoint: str, exc: TransientShareError, attempts: int) -> str:
    """Put a share back to ``pending`` on the retry schedule, or fail it when the schedule is used up."""
    message = short(str(exc))
    if exc.status == 429 and exc.retry_after is not None:
        # Being told to wait is not a failed attempt: wait exactly as long, keep the retry budget.
        rt.pacer.block(endpoint, exc.retry_after)
        finish(
            rt,
            share_id,
            status="pending",
            error=message,
            attempts=max(0, attempts - 1),
            not_before=utcnow() + timedelta(seconds=exc.retry_after),
        )
        raise Deferred(exc.retry_after, message)
    schedule = rt.settings.share_retry_schedule or RETRY_SCHEDULE
    if attempts > len(schedule):
        return finish(rt, share_id, status="failed", error=f"gave up after {attempts} attempts: {message}")
    wait = max(float(schedule[attempts - 1]), exc.retry_after or 0.0)
    finish(rt, share_id, status="pending", error=message, not_before=utcnow() + timedelta(seconds=wait))
    raise Deferred(wait, message)


# An uncertain share of a network that can look posts up is looked up again first after this many
# seconds, then after half its age each time (at most SETTLE_MAX_WAIT): a slow network's post shows
# up within seconds, a lost one is proven absent after ABSENT_AFTER, and nothing polls every second.
SETTLE_FIRST_CHECK = 2.0
SETTLE_MAX_WAIT = 3600.0
# A lookup that does not find the post proves it absent only this long after the claim (at least
# twice the request's whole-exchange deadline): until then the request we gave up on may still be
# processed by the network.
ABSENT_AFTER = 60.0


def absent_after(endpoint: Endpoint) -> float:
    """Seconds after its claim when a lookup that finds nothing proves a share's post absent."""
    return max(ABSENT_AFTER, 2 * DEADLINE_FACTOR * endpoint.timeout)


def settle_wait(age: float) -> float:
    """Seconds until the next lookup of an uncertain share claimed ``age`` seconds ago."""
    return min(max(age / 2, SETTLE_FIRST_CHECK), SETTLE_MAX_WAIT)


# An edit the network could not take is tried again after EDIT_RETRY, then after half the time since
# the newest version arrived (at most SETTLE_MAX_WAIT), and given up EDIT_GIVE_UP after it: never looped.
EDIT_RETRY = 60.0
EDIT_GIVE_UP = timedelta(days=1)


def edit_wait(age: timedelta) -> float | None:
    """Seconds until an edit is tried again, ``age`` after the newest version arrived; None: give up."""
    if age > EDIT_GIVE_UP:
        return None
    return min(max(age.total_seconds() / 2, EDIT_RETRY), SETTLE_MAX_WAIT)


def requeue_countdown(seconds: float, cap: float) -> float:
    """The countdown of a share's message put back on the queue to wait ``seconds`` (at most ``cap``).

    A little jitter, so that shares held by one block do not all wake in the same instant.
    """
    wait = seconds * (1 + random.random() / 10) + random.random() / 10
    return min(wait, cap)
