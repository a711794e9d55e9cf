"""What operators ask of the outbox: recent shares, a preview, and putting a share back or marking it sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.errors import ShareError
from worker.outbox.planning import back_catalogue_reason
from worker.outbox.skips import SKIP_REASONS
from worker.outbox.view import share_article_view
from worker.store.endpoints import sync_endpoints
from worker.store.models import Article, Share, utcnow
from worker.store.routing import routes

if TYPE_CHECKING:
    from worker.runtime import Runtime


def mark_sent(rt: Runtime, share_id: int, remote_url: str | None = None) -> bool:
    """Record that an uncertain share did reach the network (an operator checked)."""
    with rt.session() as session:
        share = session.get(Share, share_id)
        if share is None or share.status not in ("uncertain", "failed", "pending"):
            return False
        share.status, share.sent_at = "sent", utcnow()
        share.remote_url = remote_url or share.remote_url
        share.error = "marked sent by an operator"
        return True


def recent_shares(
    session: Session, *, endpoint: str | None = None, status: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The latest shares (newest first) with where each post landed and why one failed."""
    query = select(Share).join(Article).order_by(Share.id.desc()).limit(limit)
    if endpoint:
        query = query.where(Share.endpoint == endpoint)
    if status:
        query = query.where(Share.status == status)
    out = []
    for share in session.scalars(query):
        out.append(
            {
                "id": share.id,
                "article_id": share.article_id,
                "title": share.article.title or share.article.canonical_url,
                "endpoint": share.endpoint,
                "status": share.status,
                "attempts": share.attempts,
                "remote_id": share.remote_id,
                "remote_url": share.remote_url,
                "error": share.error,
                "sent_at": share.sent_at.isoformat() if share.sent_at else None,
                "not_before": share.not_before.isoformat() if share.not_before else None,
            }
        )
    return out


def find_article(session: Session, ref: str) -> Article | None:
    """The article with id ``ref`` or with ``ref`` as its URL."""
    if ref.isdigit():
        return session.get(Article, int(ref))
    return session.scalar(select(Article).where((Article.canonical_url == ref) | (Article.url == ref)))


def preview_article(rt: Runtime, ref: str, endpoint_name: str | None = None) -> list[dict[str, Any]]:
    """What each endpoint (or just ``endpoint_name``) would receive for article ``ref``; nothing is sent."""
    with rt.session() as session:
        article = find_article(session, ref)
        if article is None:
            raise LookupError(f"no article {ref!r}")
        view = share_article_view(article)
        rows = sync_endpoints(session, rt.config)
        now = utcnow()
        notes: dict[str, str | None] = {}
        for endpoint in rt.config.endpoints:
            if not routes(rt.config, endpoint, article):
                notes[endpoint.name] = SKIP_REASONS["routing"]
            elif (reason := back_catalogue_reason(endpoint, rows[endpoint.name], article, now)) is not None:
                notes[endpoint.name] = f"{SKIP_REASONS[reason]}: not shared unless sent on purpose"
            else:
                notes[endpoint.name] = None
    out = []
    for endpoint in rt.config.endpoints:
        if endpoint_name is not None and endpoint.name != endpoint_name:
            continue
        ep = rt.endpoint(endpoint.name)
        entry: dict[str, Any] = {
            "endpoint": endpoint.name,
            "kind": endpoint.kind,
            "note": notes[endpoint.name],
        }
        unset = [m.variable for m in rt.config.missing_secrets_of(endpoint.name)]
        if unset:  # read without secrets: it renders, but could not send
            why = f"not configured: {', '.join(unset)} not set"
            entry["note"] = f"{why}; {entry['note']}" if entry["note"] else why
        try:
            preview = ep.render(view)
        except ShareError as exc:
            entry["error"] = str(exc)
        else:
            entry.update(
                text=preview.text,
                length=ep.text_length(preview.text),
                limit=ep.text_limit(),
                image=preview.image,
                payload=preview.payload,
            )
        out.append(entry)
    if endpoint_name is not None and not out:
        raise LookupError(f"no endpoint named {endpoint_name!r}")
    return out
