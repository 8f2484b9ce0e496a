"""Source-address allow-lists of connector webhooks: is a request's remote address in the networks
an instance's ``allowed_networks`` names (pydantic ``list[IPvAnyNetwork]``)?

    from ctid.netallow import address_allowed

    if not address_allowed(request.remote_addr, self.config.allowed_networks):
        return 403 ...
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_allowed(remote: str | None, networks: Sequence[Network]) -> bool:
    """Whether ``remote`` (an IPv4 or IPv6 address, brackets allowed) is in one of ``networks``.

    An empty list allows every source; otherwise a missing or unreadable address is refused.
    """
    if not networks:
        return True
    try:
        address = ipaddress.ip_address((remote or "").strip("[]"))
    except ValueError:
        return False
    return any(address in network for network in networks)
