"""Delivery: one share sent exactly once (see the package docstring)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from config.model import EndpointBase
from worker import sendslots
from worker.errors import (
    Deferred,
    EndpointDisabled,
    PermanentShareError,
    ShareError,
    TransientShareError,
    UncertainShare,
)
from worker.outbox.claiming import Claim, claim_share, oldest_due
from worker.outbox.endpoints import disable_endpoint
from worker.outbox.outcome import finish, look_up, record_sent, short
from worker.outbox.pacing import paced, quiet_wait
from worker.outbox.planning import edits_posts
from worker.outbox.retry import SETTLE_FIRST_CHECK, retry_later
from worker.outbox.settling import OPERATOR_NOTE, SETTLING_NOTE, settle_share
from worker.outbox.storyedit import edit_story_post
from worker.share import Endpoint, Preview, idempotency_key
from worker.store.endpoints import sync_endpoints
from worker.store.models import Endpoint as EndpointRow
from worker.store.models import Share, utcnow

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)


def deliver_share(rt: Runtime, share_id: int) -> str:
    """Deliver one outbox row (see :mod:`worker.outbox`); return the share's status.

    Raises :class:`Deferred` when the share (or the slot this message stands for) must wait.
    """
    with rt.session() as session:
        # The share and its endpoint's disabled state in one query (the endpoint row is only
        # created here if this process is the first to see a newly configured endpoint).
        found = session.execute(
            select(
                Share.status,
                Share.endpoint,
                Share.not_before,
                Share.story_id,
                EndpointRow.name.label("row_name"),
                EndpointRow.disabled_at,
                EndpointRow.disabled_reason,
            )
            .outerjoin(EndpointRow, EndpointRow.name == Share.endpoint)
            .where(Share.id == share_id)
        ).first()
        if found is None:
            raise LookupError(f"no share with id {share_id}")
        status, name, not_before = found.status, found.endpoint, found.not_before
        if status == "uncertain":
            settled = settle_share(rt, share_id)
            return deliver_share(rt, share_id) if settled == "pending" else settled
        if status == "sent" and found.story_id is not None:
            return edit_story_post(rt, share_id)  # a version arrived after the post
        if status not in ("pending", "sending"):
            return status
        disabled_at, disabled_reason = found.disabled_at, found.disabled_reason
        if found.row_name is None:
            row = sync_endpoints(session, rt.config).get(name)
            if row is not None:
                disabled_at, disabled_reason = row.disabled_at, row.disabled_reason
    try:
        config = rt.config.endpoint(name)
    except KeyError:
        return finish(rt, share_id, status="failed", error=f"endpoint {name!r} is no longer configured")
    if disabled_at is not None:
        log.info("share %s waits: endpoint %s is disabled (%s)", share_id, name, disabled_reason)
        return "held"
    now = utcnow()
    if status == "pending":
        if not_before is not None and not_before > now:
            raise Deferred((not_before - now).total_seconds(), "not before its scheduled time")
        quiet = quiet_wait(config, now)
        if quiet > 0:
            raise Deferred(quiet, "quiet hours")
        wait = rt.pacer.reserve(config, f"{share_id}:{time.time()}")
        if wait > 0:
            raise Deferred(wait, "endpoint paced or rate-limited")
        if paced(config):
            # This message stands for one slot of the endpoint: spend it on the oldest story.
            with rt.session() as session:
                target = oldest_due(session, name, now) or share_id
            if target != share_id:
                _deliver_claimed(rt, target, config)
                raise Deferred(config.min_interval or 1.0, "slot used for an older story")
    status = _deliver_claimed(rt, share_id, config)
    if status == "sent" and edits_posts(config):
        edit_story_post(rt, share_id, joined_while_sending=True)
    return status


def _deliver_claimed(rt: Runtime, share_id: int, config: EndpointBase) -> str:
    # A slow endpoint's sends may hold all of this worker's slots but one (see worker/sendslots.py).
    slot = sendslots.acquire(rt.redis_client, config.name)
    if slot.wait > 0:
        raise Deferred(slot.wait, "slow endpoint: its sends hold this worker's slots but one")
    with slot:
        claim = claim_share(rt, share_id, rt.claim_lease, config)
        if isinstance(claim, str):
            return claim
        slot.sending()
        with rt.sending_leases.hold(share_id):
            return _send_claimed(rt, share_id, config, claim)


def _send_claimed(rt: Runtime, share_id: int, config: EndpointBase, claim: Claim) -> str:
    endpoint = rt.endpoint(config.name)
    key = idempotency_key(claim.view, config.name)
    try:
        preview = endpoint.render(claim.view)
    except PermanentShareError as exc:
        return finish(rt, share_id, status="failed", error=short(str(exc)))
    except Exception as exc:  # a rendering bug: nothing was sent, and retrying renders the same
        log.exception("%s: rendering share %s failed", config.name, share_id)
        return finish(
            rt, share_id, status="failed", error=short(f"internal error: {type(exc).__name__}: {exc}")
        )
    try:
        if claim.recovering and not endpoint.idempotent:
            settled = look_up(
                rt,
                share_id,
                endpoint,
                preview,
                key,
                unknown="a worker stopped while posting and this network cannot tell whether the post "
                "went out; check it, then `syndicate share retry` or `syndicate share mark-sent`",
            )
            if settled is not None:
                return settled
        result = endpoint.publish(preview, key)
    except EndpointDisabled as exc:
        disable_endpoint(rt, config.name, short(str(exc)))
        return finish(rt, share_id, status="failed", error=short(str(exc)))
    except PermanentShareError as exc:
        return finish(rt, share_id, status="failed", error=short(str(exc)))
    except UncertainShare as exc:
        return finish(rt, share_id, status="uncertain", error=short(str(exc)))
    except Exception as exc:
        if isinstance(exc, TransientShareError):
            transient = exc
        else:
            # A bug, not an answer: the post may or may not have gone out, so it is treated like a
            # lost answer (retried on the schedule where that is safe, else uncertain), never looped.
            log.exception("%s: delivering share %s failed unexpectedly", config.name, share_id)
            transient = TransientShareError(
                endpoint.redact(f"{config.name}: internal error: {type(exc).__name__}: {exc}"), sent=True
            )
        return _after_transient(rt, share_id, config, endpoint, preview, key, transient)
    return record_sent(rt, share_id, endpoint, result, preview.text)


def _after_transient(
    rt: Runtime,
    share_id: int,
    config: EndpointBase,
    endpoint: Endpoint,
    preview: Preview,
    key: str,
    exc: TransientShareError,
) -> str:
    """A transient failure: look the post up if it may have gone out, else retry on the schedule.

    A lost answer (``exc.sent``: no answer within the endpoint's ``timeout``, a broken connection)
    on a network that can look posts up makes the share ``uncertain`` until a lookup settles it
    (:func:`settle_share`), even where the key would make a resend safe: a slow network answers
    every resend late too. Idempotent networks without a lookup are sent again with the same key
    (a webhook's ``webhook-id``), which the share's error says; the others become ``uncertain``
    for an operator.
    """
    attempts = _attempts(rt, share_id)
    if exc.sent and (not endpoint.idempotent or endpoint.can_look_up):
        unknown = short(f"{OPERATOR_NOTE}: no answer after the request went out; the post may exist: {exc}")
        try:
            settled = look_up(rt, share_id, endpoint, preview, key, unknown=unknown)
        except ShareError as lookup_error:
            log.info(
                "%s: share %s: lookup after a lost answer failed: %s", config.name, share_id, lookup_error
            )
            settled = None
        if settled is not None:
            return settled
    if exc.sent and endpoint.can_look_up:
        wait = SETTLE_FIRST_CHECK
        finish(
            rt,
            share_id,
            status="uncertain",
            not_before=utcnow() + timedelta(seconds=wait),
            error=short(f"{SETTLING_NOTE}: {exc}"),
        )
        raise Deferred(wait, "no answer; looking the post up")
    if exc.sent and endpoint.idempotent:
        exc = TransientShareError(
            f"{exc} (sending again with the same idempotency key; raise the endpoint's `timeout` "
            "if the network is just slow)",
            status=exc.status,
            retry_after=exc.retry_after,
            sent=True,
        )
    return retry_later(rt, share_id, config.name, exc, attempts)


def _attempts(rt: Runtime, share_id: int) -> int:
    with rt.session() as session:
        share = session.get(Share, share_id)
        return share.attempts if share is not None else 1


def mark_share_failed(rt: Runtime, share_id: int, exc: BaseException) -> None:
    """Record a final failure on a share (its task gave up or crashed outside the request)."""
    with rt.session() as session:
        share = session.get(Share, share_id)
        if share is not None and share.status == "pending":
            share.status, share.error = "failed", short(f"{type(exc).__name__}: {exc}")
