"""URL helpers: resolving references against the page, stripping fragments, same-site checks."""

from __future__ import annotations

from urllib.parse import urldefrag, urljoin, urlsplit

_SECOND_LEVEL = frozenset("co com net org gov ac edu ltd plc nic ne or go".split())


def absolute(base: str, reference: str | None, *, schemes: tuple[str, ...] = ("http", "https")) -> str | None:
    """Resolve ``reference`` against ``base``; None when empty, unparsable or not one of ``schemes``."""
    if not reference:
        return None
    reference = "".join(reference.split())  # browsers drop whitespace (and newlines) inside URLs
    if not reference or reference.startswith("data:"):
        return None
    try:
        resolved = urljoin(base, reference)
        scheme = urlsplit(resolved).scheme.lower()
    except ValueError:
        return None
    if scheme not in schemes:
        return None
    return resolved


def strip_fragment(url: str) -> str:
    """Return the URL without its ``#fragment``."""
    try:
        return urldefrag(url).url
    except ValueError:
        return url


def site_of(url: str) -> str | None:
    """Approximate registrable domain of a URL (``news.example.co.uk`` → ``example.co.uk``)."""
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if not host:
        return None
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def same_site(first: str, second: str) -> bool:
    """True when both URLs belong to the same registrable domain (approximately)."""
    site = site_of(first)
    return site is not None and site == site_of(second)
