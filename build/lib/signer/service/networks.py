"""Which TCP peers are trusted proxies (plain ipaddress; the WSGI middleware is in web/)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_trusted(address: str | None, networks: Iterable[Network]) -> bool:
    """Whether ``address`` (a TCP peer) lies in one of the trusted proxy networks."""
    try:
        peer = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(peer in network for network in networks)
