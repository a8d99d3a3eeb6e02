"""Refusing webhook targets that would turn the relay against its own network (SSRF)."""

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeTarget(ValueError):
    """The URL may not be called by the relay."""


class UnresolvableTarget(OSError):
    """The URL's host does not resolve now (perhaps only for now): a failed attempt, not a verdict."""


def check_url_form(url: str, *, require_https: bool) -> str:
    """The URL's host, if its form is acceptable: http(s), a host, no credentials in it."""
    parts = urlsplit(url)
    allowed = ("https",) if require_https else ("https", "http")
    if parts.scheme not in allowed:
        raise UnsafeTarget(f"scheme must be one of {allowed}")
    if not parts.hostname:
        raise UnsafeTarget("URL has no host")
    if parts.username or parts.password:
        raise UnsafeTarget("URL must not carry credentials")
    return parts.hostname


def is_forbidden(address: IPAddress, allowed: Sequence[Network]) -> bool:
    """Loopback, private, link-local (cloud metadata), multicast, reserved and unspecified addresses are
    forbidden unless a configured network allows them."""
    if any(address in network for network in allowed):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_forbidden(address.ipv4_mapped, allowed)
    return not address.is_global or address.is_multicast


async def check_target(url: str, *, require_https: bool, allowed: Sequence[Network]) -> None:
    """Raise `UnsafeTarget` unless every address the URL's host resolves to may be called."""
    host = check_url_form(url, require_https=require_https)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass  # a name: resolve it
    else:
        # An address in the URL is what will be called: no resolution (a thread hop per attempt) needed.
        if is_forbidden(literal, allowed):
            raise UnsafeTarget(f"{host} is not a public address")
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as error:
        raise UnresolvableTarget(f"cannot resolve {host}: {error}") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if is_forbidden(address, allowed):
            raise UnsafeTarget(f"{host} resolves to {address}, which is not a public address")
