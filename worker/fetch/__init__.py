"""Fetching partner pages safely, and discovering the article URLs each source offers."""

from worker.fetch.http import DEFAULT_ACCEPT, Fetcher, FetchResult, check_url, parse_retry_after
from worker.fetch.sources import Discovered, Sitemap, discover, discover_from_document, parse_sitemap

__all__ = [
    "DEFAULT_ACCEPT",
    "Discovered",
    "FetchResult",
    "Fetcher",
    "Sitemap",
    "check_url",
    "discover",
    "discover_from_document",
    "parse_retry_after",
    "parse_sitemap",
]
