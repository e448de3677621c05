"""Which addresses the HTTP channels may reach: a guard against server-side request forgery.

A channel URL is typed in by an admin, and the notifier POSTs alarm data (and a signature)
to it from inside the plant network. Pointed at `169.254.169.254` it would talk to a
cloud's metadata service; at `127.0.0.1` or a private address, to services never meant to
be reachable from an alarm. So:

* link-local addresses (IPv4 169.254/16, IPv6 fe80::/10, which hold the cloud metadata
  services), the other known metadata addresses, unspecified, multicast and reserved
  addresses are refused always;
* loopback, private and every other non-global address is refused unless a network or
  host name in `notify.allow_private_targets` names it (the explicit opt-out: the local
  stack sets it for its receivers on 127.0.0.1);
* the check runs twice: on the URL when a channel is created or changed (a literal
  address or `localhost`, so the admin gets a 422 naming the field) and on every address
  the host name resolves to at send time, the connection then going to the address that
  was checked (a name cannot resolve to something else between check and connect).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import Final
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Metadata services outside link-local: Alibaba Cloud, AWS over IPv6, Oracle Cloud's
# IPv4 alias range is link-local already.
METADATA: Final[tuple[Network, ...]] = (
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


class TargetRefusedError(Exception):
    """An address the channels may not reach; the text says which and why."""


def _address(host: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Targets:
    """The policy: `allowed` lists networks (CIDR or single addresses) and host names that
    may be reached although loopback or private. Nothing allowed: only global addresses."""

    def __init__(self, allowed: Sequence[str] = ()) -> None:
        self.networks: list[Network] = []
        self.hosts: set[str] = set()
        for entry in allowed:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def refusal(self, ip: Address, host: str) -> str | None:
        """Why `ip` (of `host`) may not be reached, or None."""
        if ip.is_link_local or any(ip in net for net in METADATA):
            return f"{host} is {ip}, a link-local or cloud metadata address (refused always)"
        if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
            return f"{host} is {ip}, not a unicast address (refused always)"
        if ip.is_global:
            return None
        if host.lower().rstrip(".") in self.hosts or any(ip in net for net in self.networks):
            return None
        return (
            f"{host} is {ip}, a loopback or private address; allow it in "
            "notify.allow_private_targets (F5G_NOTIFY__ALLOW_PRIVATE_TARGETS) to reach it"
        )

    def check_url(self, url: str, field: str) -> None:
        """ValueError naming `field` when the URL's host is a refused literal address or
        `localhost`; names are checked again, resolved, when sending."""
        host = urlsplit(url).hostname or ""
        ip = _address(host)
        if ip is None and (host == "localhost" or host.endswith(".localhost")):
            ip = ipaddress.ip_address("127.0.0.1")
        if ip is not None and (why := self.refusal(ip, host)) is not None:
            raise ValueError(f"{field}: {why}")

    async def resolve(self, host: str, port: int) -> str:
        """The address to connect to for `host`: every address it resolves to must pass
        (one refused address refuses the name: which one a connection would take is not
        ours to choose). TargetRefusedError otherwise; OSError when it does not resolve."""
        ip = _address(host)
        if ip is not None:
            addresses = [ip]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
            addresses = [a for a in (_address(str(info[4][0])) for info in infos) if a]
            if not addresses:
                raise OSError(f"{host} resolves to no address")
        for address in addresses:
            why = self.refusal(address, host)
            if why is not None:
                raise TargetRefusedError(why)
        return str(addresses[0])
