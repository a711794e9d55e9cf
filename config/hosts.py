"""Host rules as written in ``fetch.allow_hosts``: parsed here, so that config can validate them.

Standard library only, so that :mod:`config.model` can check the entries without importing the
worker; :mod:`worker.ssrf` applies the rules (see its docstring for what each form means).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = [
    "HOST_NAME",
    "NUMERIC_HOST",
    "Address",
    "HostRule",
    "Network",
    "is_canonical_ipv4",
    "parse_host_rule",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A host written as a number in a form other than a canonical dotted quad (2130706433, 0177.0.0.1,
# 0x7f.1, 127.1): resolvers disagree about these, so they are refused outright.
NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
HOST_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?$")


@dataclass(frozen=True)
class HostRule:
    """One allow or deny rule: a host name, a network or "this machine", with an optional port.

    ``local`` rules match loopback, unspecified and this host's own addresses (see
    :func:`worker.ssrf.local_addresses`); ``label`` names what the rule protects, for error
    messages. Whether a rule covers an address is :func:`worker.ssrf.rule_covers` (it needs this
    machine's addresses, which configuration does not look up).
    """

    name: str | None = None
    network: Network | None = None
    local: bool = False
    port: int | None = None
    label: str = ""

    def matches_name(self, host: str, port: int) -> bool:
        """Whether this is a name rule for ``host`` (lower-case, no trailing dot) and ``port``."""
        return self.name is not None and self.name == host and self.port in (None, port)

    def __str__(self) -> str:
        if self.local:
            where = "this host"
        elif self.name is not None:
            where = self.name
        else:
            where = str(self.network)
        return f"{where}:{self.port}" if self.port is not None else where


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{entry!r}: port {text!r} is not a number from 1 to 65535")
    return int(text)


def _network(text: str, entry: str) -> Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"{entry!r}: {text!r} is not an IP address or CIDR network") from None


def parse_host_rule(entry: str) -> HostRule:
    """Parse one ``allow_hosts`` entry (forms: see :mod:`worker.ssrf`); raise ValueError if malformed."""
    text = entry.strip().rstrip(".").lower()
    if not text:
        raise ValueError("an empty entry allows nothing")
    if text.startswith("["):  # [v6], [v6]:port, [v6/len], [v6/len]:port
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r}: write an IPv6 address as [::1] or [::1]:8000")
        port = _port(rest[1:], entry) if rest else None
        return HostRule(network=_network(inside, entry), port=port)
    if text.count(":") > 1:  # a bare IPv6 address or network: no port
        return HostRule(network=_network(text, entry))
    host, colon, port_text = text.partition(":")
    port = _port(port_text, entry) if colon else None
    if "/" in host or is_canonical_ipv4(host):
        return HostRule(network=_network(host, entry), port=port)
    if not HOST_NAME.match(host) or NUMERIC_HOST.match(host):
        raise ValueError(f"{entry!r}: {host!r} is not a host name, an IP address or a CIDR network")
    return HostRule(name=host, port=port)


def is_canonical_ipv4(host: str) -> bool:
    """Whether ``host`` is an IPv4 address written as a canonical dotted quad."""
    try:
        return str(ipaddress.IPv4Address(host)) == host
    except ValueError:
        return False
