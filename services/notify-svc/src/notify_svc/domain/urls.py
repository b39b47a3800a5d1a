"""Which webhook URLs Koppel may call (no SSRF).

A URL is checked twice: its shape when an endpoint is saved (scheme, host, no credentials), and the
addresses its host resolves to, both when it is saved and before every delivery — a name that
resolved to a public address yesterday may resolve to 127.0.0.1 today (DNS rebinding), so the
delivery connects to an address that was just checked. Every address must be allowed; one private
address among public ones refuses the URL.

An address is allowed when it is globally routable (not private, loopback, link-local, CGNAT,
documentation, reserved, unspecified or multicast), looking through IPv6 forms that embed an IPv4
address (IPv4-mapped, 6to4, Teredo, NAT64), or when it falls in a network the operator explicitly
allows in settings (tests allow 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class UrlRefused(ValueError):
    """The URL may not be called; ``code`` is stable, the message says why in words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UrlPolicy:
    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def build(cls, allow_http: bool, allowed_networks: Iterable[str]) -> UrlPolicy:
        return cls(allow_http, tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks))


@dataclass(frozen=True)
class Target:
    """A URL split into what the sender needs: connect to a checked address, speak to ``host``."""

    scheme: str
    host: str  # lower-case name or address literal, without brackets
    port: int
    path: str  # path and query, at least "/"

    @property
    def literal(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse_url(url: str, policy: UrlPolicy) -> Target:
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused("url_too_long", f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UrlRefused("url_invalid", f"not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("url_scheme", "the URL must start with https://")
    if scheme == "http" and not policy.allow_http:
        raise UrlRefused("url_not_https", "webhook URLs must use https")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("url_credentials", "the URL may not contain a user name or password")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UrlRefused("url_invalid", "the URL has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (deprecated) ::a.b.c.d
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def address_refusal(address: IPAddress, policy: UrlPolicy) -> str | None:
    """Why ``address`` may not be called, or None when it may."""
    if any(address in n for n in policy.allowed_networks if n.version == address.version):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return f"{address} is a scoped (link-local) address"
        inner = _embedded_ipv4(address)
        if inner is not None:
            why = address_refusal(inner, policy)
            return f"{address} embeds {why}" if why else None
    if address.is_loopback:
        return f"{address} is a loopback address"
    if address.is_link_local:
        return f"{address} is a link-local address"
    if address.is_multicast:
        return f"{address} is a multicast address"
    if address.is_unspecified:
        return f"{address} is the unspecified address"
    if address.is_private:
        return f"{address} is a private address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_addresses(host: str, addresses: Sequence[str], policy: UrlPolicy) -> list[IPAddress]:
    """The addresses to connect to, all allowed; refuses when any is not (or there are none)."""
    if not addresses:
        raise UrlRefused("url_unresolvable", f"{host} does not resolve to any address")
    checked: list[IPAddress] = []
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError as exc:
            raise UrlRefused("url_unresolvable", f"{host} resolved to something that is not an address") from exc
        why = address_refusal(address, policy)
        if why:
            raise UrlRefused("url_forbidden_address", f"{host} may not be called: {why}")
        if address not in checked:
            checked.append(address)
    return checked
