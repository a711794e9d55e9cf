"""Normalization stage: turn a fetched page ``(html, url)`` into an :class:`Article`.

Pure (no network, no database). The page is parsed once with lxml; the body is sanitized with nh3::

    from worker.normalize import Article, normalize

    article = normalize(body_bytes, "https://example.org/news/1", content_type="text/html; charset=utf-8")

Raises :class:`worker.errors.NormalizeError` when the document holds no article.
"""

from worker.normalize.article import Article
from worker.normalize.core import normalize

__all__ = ["Article", "normalize"]
