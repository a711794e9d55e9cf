"""Why an article was not shared to an endpoint (``share_skips``), kept in step with planning and claims."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from worker.store.models import Share, ShareSkip, utcnow

SKIP_REASONS = {
    "first_crawl": "back catalogue: found by its source's first crawl",
    "back_catalogue": "back catalogue: first seen before the endpoint was added",
    "too_old": "too old: pushed, but published well before the endpoint was added",
    "routing": "not routed to this endpoint",
    "same_story": "another version of its story is shared to this endpoint (one post per story)",
}


def record_skips(session: Session, article_id: int, skipped: dict[str, str], planned: list[str]) -> None:
    """Keep ``share_skips`` in step with this planning: a row per skipped endpoint, none for the others."""
    if planned:
        session.execute(
            delete(ShareSkip).where(ShareSkip.article_id == article_id, ShareSkip.endpoint.in_(planned))
        )
    if not skipped:
        return
    rows = [
        {"article_id": article_id, "endpoint": name, "reason": why, "created_at": utcnow()}
        for name, why in skipped.items()
    ]
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(ShareSkip).values(rows)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["article_id", "endpoint"], set_={"reason": statement.excluded.reason}
            )
        )
        _drop_held_skips(session, article_id)
        return
    known = {
        s.endpoint: s for s in session.scalars(select(ShareSkip).where(ShareSkip.article_id == article_id))
    }
    for name, why in skipped.items():
        if name in known:
            known[name].reason = why
        else:
            session.add(ShareSkip(article_id=article_id, endpoint=name, reason=why))
    session.flush()
    _drop_held_skips(session, article_id)


def _drop_held_skips(session: Session, article_id: int) -> None:
    """No skip row where the article holds the endpoint's share: a delivery moved its story's share to
    this version (``_claim_pending``) after this planning had read the share on another version."""
    held = select(Share.endpoint).where(Share.article_id == article_id)
    session.execute(
        delete(ShareSkip)
        .where(ShareSkip.article_id == article_id, ShareSkip.endpoint.in_(held))
        .execution_options(synchronize_session=False)
    )


def skipped_counts(session: Session) -> dict[str, dict[str, int]]:
    """Skipped shares per endpoint and reason: ``{endpoint: {reason: count}}``."""
    out: dict[str, dict[str, int]] = {}
    for endpoint, reason, count in session.execute(
        select(ShareSkip.endpoint, ShareSkip.reason, func.count()).group_by(
            ShareSkip.endpoint, ShareSkip.reason
        )
    ):
        out.setdefault(endpoint, {})[reason] = count
    return out
