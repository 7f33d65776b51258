"""What we record about the client making a request: its address and its user agent.

The client address is `REMOTE_ADDR` (the peer of gunicorn's socket) unless that peer is a trusted
proxy (`TRUSTED_PROXIES`: addresses or networks, and `unix` for a Unix socket, where gunicorn leaves
`REMOTE_ADDR` empty). Then it is the nearest address in `X-Forwarded-For` that is not itself a
trusted proxy, read from the right: each proxy appends the address it saw, so the rightmost entry
written by our own proxy is the one that cannot be forged, and everything left of the first
untrusted entry is the client's to write. gunicorn itself never takes `REMOTE_ADDR` from
`X-Forwarded-For`: its `forwarded_allow_ips` only governs the scheme headers.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:  # settings.py imports this module: nothing here may need configured settings
    from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNIX = "unix"


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...]
    unix: bool

    @classmethod
    def parse(cls, items: Iterable[str]) -> TrustedProxies:
        """From "127.0.0.1", "10.0.0.0/8", "::1", "unix"; ValueError names the first bad item."""
        networks: list[Network] = []
        unix = False
        for item in items:
            if item == UNIX:
                unix = True
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an address, a network or 'unix'") from None
        return cls(tuple(networks), unix)

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


@functools.lru_cache(maxsize=8)
def _trusted(items: tuple[str, ...]) -> TrustedProxies:
    return TrustedProxies.parse(items)


def parse_address(raw: str) -> Address | None:
    """An address as proxies write it ("203.0.113.7", "203.0.113.7:443", "[2001:db8::1]:443",
    "2001:db8::1"); IPv4-mapped IPv6 becomes IPv4. None for anything else."""
    raw = raw.strip()
    if raw.startswith("["):
        raw, closed, _port = raw[1:].partition("]")
        if not closed:
            return None
    elif raw.count(":") == 1:
        raw = raw.partition(":")[0]
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _peer(request: HttpRequest, trusted: TrustedProxies) -> tuple[Address | None, bool]:
    """The socket's peer, and whether it is a trusted proxy."""
    remote = str(request.META.get("REMOTE_ADDR", ""))
    peer = parse_address(remote) if remote else None
    return peer, (trusted.trusts(peer) if peer is not None else (trusted.unix and remote == ""))


def from_trusted_proxy(request: HttpRequest) -> bool:
    """Whether the request's headers were written by our own proxy (TRUSTED_PROXIES)."""
    return _peer(request, _trusted(tuple(settings.TRUSTED_PROXIES)))[1]


def client_address(request: HttpRequest) -> Address | None:
    """The client's address (module docstring); None when it cannot be told."""
    trusted = _trusted(tuple(settings.TRUSTED_PROXIES))
    peer, from_proxy = _peer(request, trusted)
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if not from_proxy or not forwarded:
        return peer
    client = peer
    for entry in reversed(forwarded.split(",")):
        client = parse_address(entry)
        if client is None or not trusted.trusts(client):
            # A trusted proxy wrote something that is not an address: the client is unknown (None),
            # never the proxy, whose one address would put every member in one rate-limit bucket.
            break
    return client


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as text, for the audit trail and consents (rate limits count
    `oficina.lib.ratelimit.client_network`)."""
    address = client_address(request)
    return None if address is None else str(address)


def user_agent(request: HttpRequest) -> str:
    raw = str(request.META.get("HTTP_USER_AGENT", ""))
    return "".join(ch for ch in raw if ch.isprintable())[:400]
