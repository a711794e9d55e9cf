"""Security headers on every answer of the web app, and a Content-Security-Policy fitted to each page.

Every answer gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (the status
page links to partners' articles; the ops URL is nobody's business), ``X-Frame-Options: DENY`` and
a Content-Security-Policy with ``frame-ancestors 'none'``:

- JSON, text and everything else: ``default-src 'none'`` (nothing in it may load or run);
- HTML (the status page, Swagger UI at ``/api/docs``, the demo site): ``default-src 'none'`` plus the
  page's own inline ``<script>`` and ``<style>`` blocks by SHA-256 hash, scripts and styles from this
  origin (Swagger UI's bundle), ``connect-src 'self'`` (retry buttons, Swagger's "try it out") and
  images from this origin or ``data:`` (Swagger's icons). No ``'unsafe-inline'``: a page is hashed
  as it is sent, so a script injected into it would not run;
- RSS/Atom/XML (feeds opened in a browser): the XSL stylesheet from this origin (XSLT loads are
  governed by ``script-src``) and the ``<style>`` block that stylesheet writes, by hash.

A route may set its own ``Content-Security-Policy``; it is kept.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feeds import stylesheet

FRAME_ANCESTORS = "frame-ancestors 'none'"
# JSON and anything else that is not a page: nothing may load, run or frame it.
STRICT_CSP = f"default-src 'none'; {FRAME_ANCESTORS}; base-uri 'none'; form-action 'none'"

_INLINE = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)
_SRC_ATTR = re.compile(r"\bsrc\s*=", re.IGNORECASE)


def _hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


def inline_hashes(document: str) -> tuple[list[str], list[str]]:
    """The CSP hash sources of ``document``'s inline scripts and of its ``<style>`` blocks."""
    scripts: list[str] = []
    styles: list[str] = []
    for tag, attributes, text in _INLINE.findall(document):
        if tag.lower() == "style":
            styles.append(_hash(text))
        elif not _SRC_ATTR.search(attributes):
            scripts.append(_hash(text))
    return list(dict.fromkeys(scripts)), list(dict.fromkeys(styles))


def page_csp(document: str) -> str:
    """The policy of one HTML page: its own inline code by hash, assets and requests from this origin."""
    scripts, styles = inline_hashes(document)
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *scripts]),
            " ".join(["style-src 'self'", *styles]),
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            FRAME_ANCESTORS,
        ]
    )


def _feed_csp() -> str:
    _, styles = inline_hashes(stylesheet.STYLESHEET)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            " ".join(["style-src", *styles]),
            "base-uri 'none'",
            "form-action 'none'",
            FRAME_ANCESTORS,
        ]
    )


FEED_CSP = _feed_csp()

COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_XML_TYPES = (b"application/rss+xml", b"application/atom+xml", b"application/xml", b"text/xml")


def _csp_for(content_type: bytes) -> bytes | None:
    """The policy of a non-HTML answer by its ``Content-Type`` (``None``: HTML, hashed from its body)."""
    kind = content_type.split(b";", 1)[0].strip().lower()
    if kind == b"text/html":
        return None
    if kind in _XML_TYPES:
        return FEED_CSP.encode()
    return STRICT_CSP.encode()


class SecurityHeaders:
    """Add :data:`COMMON_HEADERS` and a Content-Security-Policy to every HTTP answer.

    An HTML answer is held until its last body part (pages here are at most some hundred KB) so
    its inline code can be hashed into its policy; anything else passes straight through with
    headers added to its start message.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        parts: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in COMMON_HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                    csp = _csp_for(content_type)
                    if csp is None:
                        held = {**message, "headers": headers}
                        return
                    headers.append((b"content-security-policy", csp))
                await send({**message, "headers": headers})
                return
            if held is None or message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(parts)
            csp = page_csp(body.decode("utf-8", "replace")).encode()
            await send({**held, "headers": [*held["headers"], (b"content-security-policy", csp)]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_with_headers)
