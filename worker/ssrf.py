"""The SSRF guard: refuse URLs whose host is (or resolves to) an address Syndicate must not contact.

URLs that come from partner pages (article links, lead images, redirect targets) could point at
the worker's own network: a metadata service, a database, a router. :func:`check_url` allows only
http and https URLs without credentials whose host resolves to public unicast addresses only.
:class:`worker.http.HttpClient` applies it to every request made with ``guard=True``; the fetcher
applies it to every redirect hop it follows.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from worker.errors import BlockedURL, TransientFetchError

__all__ = ["check_url"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# A host written as a number in a form other than a canonical dotted quad (2130706433, 0177.0.0.1,
# 0x7f.1, 127.1): resolvers disagree about these, so they are refused outright.
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def check_url(url: str, allow_hosts: Collection[str] = ()) -> None:
    """Refuse (raise :class:`BlockedURL`) a URL Syndicate must not fetch.

    Only http and https URLs without credentials are allowed, and only when every address the
    host resolves to is public: private, loopback, link-local, multicast, reserved and
    unspecified addresses are blocked, also when wrapped in IPv4-mapped, 6to4, Teredo or NAT64
    IPv6 forms. Hosts (``host`` or ``host:port``) listed in ``allow_hosts`` skip the address check.
    A host that does not resolve raises :class:`TransientFetchError`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BlockedURL(f"malformed URL: {exc}", url) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedURL(f"scheme {scheme or '(none)'!r} is not allowed, only http and https", url)
    if parts.username is not None or parts.password is not None:
        raise BlockedURL("URLs with credentials are not allowed", url)
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise BlockedURL("URL has no host", url)
    if port is None:
        port = 443 if scheme == "https" else 80
    if _is_allowed(host, port, allow_hosts):
        return
    if _NUMERIC_HOST.match(host) and not _is_canonical_ipv4(host):
        raise BlockedURL(f"host {host!r} is a non-canonical numeric address", url)
    for address in _resolve(host, port, url):
        reason = _blocked_reason(address)
        if reason:
            raise BlockedURL(f"host {host!r} resolves to {reason} address {address}", url)


def _is_allowed(host: str, port: int, allow_hosts: Collection[str]) -> bool:
    wanted = {host, f"{host}:{port}"}
    if ":" in host:  # IPv6 literals may be listed with or without brackets
        wanted |= {f"[{host}]", f"[{host}]:{port}"}
    return any(entry.strip().rstrip(".").lower() in wanted for entry in allow_hosts)


def _is_canonical_ipv4(host: str) -> bool:
    try:
        return str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        return False


def _resolve(host: str, port: int, url: str) -> list[Address]:
    """Every address ``host`` resolves to (a seam tests replace to fake public DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransientFetchError(f"cannot resolve host {host!r}: {exc}", url) from None
    addresses = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        try:
            addresses.append(ipaddress.ip_address(raw))
        except ValueError:
            raise BlockedURL(f"host {host!r} resolves to unparseable address {raw!r}", url) from None
    if not addresses:
        raise TransientFetchError(f"host {host!r} has no address", url)
    return addresses


def _blocked_reason(address: Address) -> str | None:
    """Why ``address`` must not be contacted, or None if it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for inner in embedded:
            reason = _blocked_reason(inner)
            if reason:
                return f"{reason} (embedded {inner})"
        if embedded:
            # A wrapper is as safe as what it wraps; Python < 3.11.10 also calls all of 2002::/16 private.
            return None
    checks = (
        ("a loopback", address.is_loopback),
        ("an unspecified", address.is_unspecified),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        # Shared (CGNAT), documentation and other special ranges are not global either.
        ("a non-global", not address.is_global),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None
