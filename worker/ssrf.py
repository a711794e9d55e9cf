"""The SSRF guard: refuse URLs whose host is (or resolves to) an address Syndicate must not contact.

URLs that come from partner pages (article links, lead images, redirect targets) or from the ingest
API could point at the worker's own network: a metadata service, a database, a router, Syndicate's
own web app, Flower or Redis. :class:`Guard` allows only http and https URLs without credentials
whose host resolves to public unicast addresses only, except where the operator's ``allow_hosts``
says otherwise, and never where a ``deny`` rule matches.

Rules (:func:`parse_host_rule`), as written in ``fetch.allow_hosts``:

- ``partner.internal`` or ``partner.internal:8080``: that host *name* (any port, or that port); the
  name is trusted, so its addresses are not checked.
- ``127.0.0.1``, ``10.0.0.0/8``, ``::1``, ``fd00::/8``: addresses (any port) the host may resolve to.
- ``127.0.0.1:8000``, ``127.0.0.1/32:8000``, ``[::1]:8000``, ``[fd00::/8]:8000``: the same, one port.

A URL passes an allow rule when its name matches a name rule, or when *every* address it resolves
to is public or inside an address rule for its port. Deny rules are checked first, always against
the resolved addresses (so ``localhost``, ``127.1`` or a name resolving to this machine cannot go
round them): :func:`own_service_rules` builds the ones that keep ingest-supplied URLs off
Syndicate's own ports (web app, Flower, Redis) on loopback and on this host's addresses, whatever
``allow_hosts`` says. :class:`worker.http.HttpClient` applies a guard to every request made with
``guard=...``; the fetcher applies it to every redirect hop and to robots.txt.

DNS rebinding: a name can resolve to a public address when checked and to 127.0.0.1 a moment
later. So the check that counts is made when connecting: :meth:`Guard.resolve` resolves the name
once and checks every address, and the connection (:mod:`worker.http`) goes to exactly those
addresses, with TLS SNI, certificate verification and the Host header still using the name; a
pooled connection is checked again by its peer address (:meth:`Guard.check_peer`) before it
carries a guarded request. :meth:`Guard.check` remains an early refusal (before robots.txt and the
host limit) and is not what the connection trusts.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Collection, Iterable
from urllib.parse import urlsplit

from config.hosts import NUMERIC_HOST, Address, HostRule, is_canonical_ipv4, parse_host_rule
from worker.errors import BlockedURL, TransientFetchError

__all__ = ["Guard", "HostRule", "check_url", "own_service_rules", "parse_host_rule", "rule_covers"]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def rule_covers(rule: HostRule, address: Address, port: int) -> bool:
    """Whether ``rule`` is an address (or local) rule covering ``address`` on ``port``."""
    if rule.port not in (None, port):
        return False
    candidates = [address, *_embedded(address)]
    if rule.local:
        return any(a.is_loopback or a.is_unspecified or a in local_addresses() for a in candidates)
    network = rule.network
    return network is not None and any(a.version == network.version and a in network for a in candidates)


def own_service_rules(
    *, http_port: int, flower_port: int, redis_url: str | None = None, public_url: str | None = None
) -> list[HostRule]:
    """Deny rules for Syndicate's own services: web app, Flower and Redis ports on this machine.

    Each port is denied on loopback, the unspecified address and this host's addresses; the Redis
    URL's host and the public URL's host are denied on their ports too, wherever they live, since
    both are Syndicate itself.
    """
    rules = [
        HostRule(local=True, port=http_port, label="Syndicate's web app"),
        HostRule(local=True, port=flower_port, label="Flower"),
    ]
    for url, label, default_port in ((redis_url, "Redis", 6379), (public_url, "Syndicate's web app", None)):
        if not url:
            continue
        parts = urlsplit(url)
        try:
            port = parts.port or default_port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            continue
        host = (parts.hostname or "").rstrip(".").lower()
        rules.append(HostRule(local=True, port=port, label=label))
        if host:
            try:
                rules.append(HostRule(network=ipaddress.ip_network(host), port=port, label=label))
            except ValueError:
                rules.append(HostRule(name=host, port=port, label=label))
    return rules


class Guard:
    """Decides which URLs may be fetched: ``allow`` widens the public-only default, ``deny`` wins."""

    def __init__(
        self,
        allow: Iterable[str | HostRule] = (),
        deny: Iterable[HostRule] = (),
        *,
        setting: str | None = None,
    ) -> None:
        """Build from ``allow_hosts`` entries (strings are parsed) and deny rules.

        ``setting`` names the config key the ``allow`` entries come from (``fetch.allow_hosts``):
        a refusal of a private or loopback address then says how to allow it.
        """
        self.allow = tuple(rule if isinstance(rule, HostRule) else parse_host_rule(rule) for rule in allow)
        self.deny = tuple(deny)
        self.setting = setting

    def with_deny(self, deny: Iterable[HostRule]) -> Guard:
        """A guard with the same allow rules and these deny rules added."""
        return Guard(self.allow, (*self.deny, *deny), setting=self.setting)

    def check(self, url: str) -> None:
        """Raise :class:`BlockedURL` if ``url`` must not be fetched (see :func:`check_url`)."""
        host, port = self._check_form(url)
        if self._trusted(host, port):
            return
        self._check_addresses(host, port, _resolve(host, port, url), url)

    def check_form(self, url: str) -> None:
        """The checks of :meth:`check` that need no DNS: scheme, credentials, host form, deny names.

        :class:`worker.http.HttpClient` runs these before a guarded request and leaves the
        addresses to the connection (:meth:`resolve`), so that the name is resolved once.
        """
        self._check_form(url)

    def resolve(self, host: str, port: int) -> list[Address]:
        """Resolve ``host`` once and return its addresses, every one checked for ``port``.

        The connection layer connects to exactly these addresses and resolves nothing itself, so a
        resolver that answers a public address now and a private one the next time (DNS
        rebinding) cannot move the connection to where the check did not look. Raises
        :class:`BlockedURL` or, when the host does not resolve, :class:`TransientFetchError`.
        """
        host = host.strip("[]").rstrip(".").lower()
        url = f"//{host}:{port}"
        self._refuse_denied_name(host, port, url)
        addresses = _resolve(host, port, url)
        if not self._trusted(host, port):
            self._check_addresses(host, port, addresses, url)
        return addresses

    def check_peer(self, host: str, port: int, address: Address) -> None:
        """Raise :class:`BlockedURL` unless a connection to ``host`` at ``address`` may carry a request.

        For a pooled connection opened earlier (perhaps under another guard): only the address it
        is connected to counts, not what the name resolves to now.
        """
        host = host.strip("[]").rstrip(".").lower()
        url = f"//{host}:{port}"
        self._refuse_denied_name(host, port, url)
        if not self._trusted(host, port):
            self._check_addresses(host, port, [address], url)

    def _check_form(self, url: str) -> tuple[str, int]:
        """Scheme, credentials, host form and deny names of ``url``; its host and port."""
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
        if NUMERIC_HOST.match(host) and not is_canonical_ipv4(host):
            raise BlockedURL(f"host {host!r} is a non-canonical numeric address", url)
        self._refuse_denied_name(host, port, url)
        return host, port

    def _refuse_denied_name(self, host: str, port: int, url: str) -> None:
        """Raise :class:`BlockedURL` if a deny rule names ``host`` (and ``port``)."""
        for rule in self.deny:
            if rule.matches_name(host, port):
                raise BlockedURL(f"{host}:{port} is {rule.label or 'denied'}: never fetched", url)

    def _trusted(self, host: str, port: int) -> bool:
        """Whether a name rule trusts ``host`` and no deny rule could match one of its addresses."""
        return not self.deny and any(rule.matches_name(host, port) for rule in self.allow)

    def _check_addresses(self, host: str, port: int, addresses: list[Address], url: str) -> None:
        """Refuse ``addresses`` of ``host`` (on ``port``) that are denied, or neither public nor allowed."""
        for address in addresses:
            for rule in self.deny:
                if rule_covers(rule, address, port):
                    what = rule.label or "denied"
                    raise BlockedURL(f"{host}:{port} ({address}) is {what} on this host: never fetched", url)
        if any(rule.matches_name(host, port) for rule in self.allow):
            return
        for address in addresses:
            if any(rule_covers(rule, address, port) for rule in self.allow):
                continue
            reason = _blocked_reason(address)
            if reason:
                entry = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                hint = f'; to fetch it, add "{entry}" to {self.setting}' if self.setting else ""
                raise BlockedURL(f"host {host!r} resolves to {reason} address {address}{hint}", url)


def check_url(url: str, allow_hosts: Collection[str] = (), deny: Iterable[HostRule] = ()) -> None:
    """Refuse (raise :class:`BlockedURL`) a URL Syndicate must not fetch.

    Only http and https URLs without credentials are allowed, and only when every address the
    host resolves to is public: private, loopback, link-local, multicast, reserved and
    unspecified addresses are blocked, also when wrapped in IPv4-mapped, 6to4, Teredo or NAT64
    IPv6 forms. ``allow_hosts`` entries (see :func:`parse_host_rule`) exempt hosts, networks and
    ports; ``deny`` rules refuse whatever they match first. A host that does not resolve raises
    :class:`TransientFetchError`.
    """
    Guard(allow_hosts, deny).check(url)


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


@functools.lru_cache(maxsize=1)
def local_addresses() -> frozenset[Address]:
    """This machine's own addresses, as far as the standard library can tell (cached per process).

    The host name's addresses, the address the kernel would send from (a UDP "connect" sends
    nothing) and, on Linux, every IPv6 interface address from ``/proc/net/if_inet6``.
    """
    found: set[Address] = set()
    for name in {socket.gethostname(), socket.getfqdn()}:
        try:
            infos = socket.getaddrinfo(name, None)
        except (OSError, UnicodeError):
            continue
        for info in infos:
            try:
                found.add(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except ValueError:
                continue
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as udp:
                udp.connect((probe, 9))
                found.add(ipaddress.ip_address(udp.getsockname()[0].split("%", 1)[0]))
        except (OSError, ValueError):
            continue
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as lines:
            for line in lines:
                raw = line.split()[0]
                found.add(ipaddress.IPv6Address(int(raw, 16)))
    except (OSError, ValueError, IndexError):
        pass
    return frozenset(found)


def _embedded(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address wraps (IPv4-mapped, 6to4, Teredo, NAT64)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    embedded: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if address in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def _blocked_reason(address: Address) -> str | None:
    """Why ``address`` must not be contacted, or None if it is a public unicast address."""
    embedded = _embedded(address)
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
