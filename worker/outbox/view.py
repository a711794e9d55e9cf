"""The stored article as an endpoint sees it (:class:`~worker.share.ShareArticle`)."""

from __future__ import annotations

from worker.errors import NormalizeError
from worker.normalize.render import plain_text
from worker.share import ShareArticle
from worker.store.models import Article

LEAD_CHARS = 5000


def _lead(content_html: str | None) -> str:
    """The opening of the stored body's plain text (the normalizer's: captions left out)."""
    if not content_html:
        return ""
    try:
        return plain_text(content_html)[:LEAD_CHARS]
    except NormalizeError:
        return ""


def share_article_view(article: Article) -> ShareArticle:
    """The article as an endpoint sees it."""
    return ShareArticle(
        article_id=article.id,
        url=article.canonical_url,
        title=article.title or article.canonical_url,
        summary=article.summary or "",
        source=article.source.name,
        category=article.category,
        tags=tuple(article.tags or ()),
        authors=tuple(article.authors or ()),
        published=article.published,
        image=article.image,
        language=article.language,
        first_seen=article.first_seen_at,
        lead=_lead(article.content_html),
    )
