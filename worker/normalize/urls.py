"""URL helpers: resolving references against the page, stripping fragments, same-site checks, and
the canonical form articles are keyed by (:func:`normalize_url`)."""

from __future__ import annotations

from urllib.parse import unquote_plus, urldefrag, urljoin, urlsplit, urlunsplit

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


# Query keys that only say where a click came from: the same story with any of them is the same URL.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "igshid",
        "igsh",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "vero_conv",
        "wickedid",
        "rb_clickid",
        "s_cid",
        "ncid",
        "spm",
        "__s",
        "ref_src",
        "ref_url",
    }
)


def _tracking(part: str) -> bool:
    key = unquote_plus(part.split("=", 1)[0]).strip().lower()
    return key.startswith(("utm_", "pk_", "hsa_")) or key in TRACKING_PARAMS


def normalize_url(url: str) -> str:
    """The form of a URL we key articles by: fragment and tracking parameters dropped, space stripped.

    Tracking parameters are :data:`TRACKING_PARAMS` plus every ``utm_*``, ``pk_*`` and ``hsa_*``
    key; the other parameters keep their order and spelling, so nothing else about the URL changes.
    """
    url = urldefrag(url.strip())[0]
    scheme, netloc, path, query, _ = urlsplit(url)
    if not query:
        return url
    kept = [part for part in query.split("&") if part and not _tracking(part)]
    return urlunsplit((scheme, netloc, path, "&".join(kept), ""))
