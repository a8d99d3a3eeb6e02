"""Refusing webhook targets that would turn the relay against its own network (SSRF).

Three places use this module, each for what it can see:

- Registration (the API and `orders webhooks add`) calls `check_endpoint_url`: the URL's form, and every
  address its host resolves to now must be public. It returns the URL as it is stored.
- Every delivery attempt calls `check_target`: the URL's form, and its host if that is an address. No
  lookup: a name is looked up once, when the HTTP client opens a connection, by
- `PublicAddressResolver`, the HTTP client's resolver. It drops every forbidden address from the answer and
  hands the connector only what is left, so the connection goes to an address that was checked. There is no
  second lookup that a rebinding DNS server could answer differently.
"""

import bisect
import functools
import ipaddress
import re
import socket
from collections.abc import Sequence
from typing import Annotated

import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from pydantic import AfterValidator, AnyHttpUrl, TypeAdapter, ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeTarget(ValueError):
    """The URL may not be called by the relay: its form, or where it leads."""


class UnresolvableTarget(OSError):
    """The URL's host does not resolve now (perhaps only for now): a failed attempt, not a verdict.

    An `OSError`, so that the HTTP client's attempt fails with it (its text shows the `strerror`), like
    any other lookup or connection that failed."""

    def __init__(self, host: str, error: Exception) -> None:
        reason = getattr(error, "strerror", None) or str(error)
        super().__init__(getattr(error, "errno", None) or 0, f"cannot resolve {host}: {reason}")

    def __str__(self) -> str:
        return str(self.strerror)


# The IANA special-purpose address registries (IPv4 and IPv6, as of 2025), and the few ranges outside them
# that are not public either (multicast, site-local, the deprecated IPv4-compatible and -translated forms).
# Every range is forbidden, also those the registry marks "globally reachable" (AS112, AMT, the anycast
# services in 192.0.0.0/24 and 2001::/23): no webhook receiver lives at a DNS sink or a protocol relay.
IPV4_SPECIAL: dict[str, str] = {
    "0.0.0.0/8": "this network (0.0.0.0 reaches the host itself)",
    "10.0.0.0/8": "private use",
    "100.64.0.0/10": "shared address space (carrier-grade NAT)",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link local (the cloud metadata address 169.254.169.254)",
    "172.16.0.0/12": "private use",
    "192.0.0.0/24": "IETF protocol assignments (DS-Lite, NAT64 discovery, PCP and TURN anycast)",
    "192.0.2.0/24": "documentation (TEST-NET-1)",
    "192.31.196.0/24": "AS112-v4",
    "192.52.193.0/24": "AMT",
    "192.88.99.0/24": "deprecated 6to4 relay anycast",
    "192.168.0.0/16": "private use",
    "192.175.48.0/24": "direct delegation AS112 service",
    "198.18.0.0/15": "benchmarking",
    "198.51.100.0/24": "documentation (TEST-NET-2)",
    "203.0.113.0/24": "documentation (TEST-NET-3)",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved (former class E)",
    "255.255.255.255/32": "limited broadcast",
}

IPV6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
"""The only IPv6 space IANA has allocated for global unicast: every address outside it is forbidden (among
them ::/128, ::1, the IPv4-compatible ::/96, 100::/64, 5f00::/16, fc00::/7, fe80::/10, fec0::/10 and
ff00::/8, listed below all the same), except the two embedding prefixes decided by their IPv4 address."""

IPV6_SPECIAL: dict[str, str] = {
    "::/128": "unspecified",
    "::1/128": "loopback",
    "::/96": "IPv4-compatible (deprecated), e.g. ::127.0.0.1",
    "::ffff:0:0:0/96": "IPv4-translated (SIIT), e.g. ::ffff:0:7f00:1",
    "64:ff9b:1::/48": "local-use IPv4/IPv6 translation",
    "100::/64": "discard only",
    "100:0:0:1::/64": "dummy prefix",
    "2001::/23": "IETF protocol assignments (Teredo, benchmarking, AMT, AS112, ORCHID, drone remote ID)",
    "2001::/32": "Teredo",
    "2001:2::/48": "benchmarking",
    "2001:db8::/32": "documentation",
    "2002::/16": "6to4",
    "2620:4f:8000::/48": "direct delegation AS112 service",
    "3fff::/20": "documentation",
    "5f00::/16": "segment routing (SRv6) SIDs",
    "fc00::/7": "unique local",
    "fe80::/10": "link local",
    "fec0::/10": "site local (deprecated)",
    "ff00::/8": "multicast",
}

# Two IPv6 forms embed an IPv4 address that is, in effect, where the connection goes: a dual-stack socket
# sends ::ffff:a.b.c.d to a.b.c.d, and a NAT64 gateway sends 64:ff9b::a.b.c.d to a.b.c.d. These are decided
# by the embedded address (forbidden if it is), not forbidden whole: in an IPv6-only cluster with DNS64,
# every IPv4-only receiver resolves to 64:ff9b::<its public IPv4>, and forbidding the prefix would cut them
# all off, while an attacker's 64:ff9b::10.0.0.1 is refused as 10.0.0.1 is.
# Every other embedding prefix is forbidden whole: IPv4-compatible and IPv4-translated addresses, 6to4 and
# Teredo are deprecated or need a relay whose reach we cannot judge, and the local-use NAT64 prefix
# (64:ff9b:1::/48) is carved by each operator at a prefix length of its choosing, so where the IPv4 address
# sits in it is not knowable from the address alone. Nothing public needs them.
IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


def _ranges(networks: Sequence[str]) -> tuple[list[int], list[int]]:
    """Sorted, merged [first, last] integer ranges of `networks`, for a bisection per address."""
    spans = sorted(
        (int(n.network_address), int(n.broadcast_address)) for n in map(ipaddress.ip_network, networks)
    )
    firsts: list[int] = []
    lasts: list[int] = []
    for first, last in spans:
        if lasts and first <= lasts[-1] + 1:
            lasts[-1] = max(lasts[-1], last)
        else:
            firsts.append(first)
            lasts.append(last)
    return firsts, lasts


_FORBIDDEN_V4 = _ranges(list(IPV4_SPECIAL))
_FORBIDDEN_V6 = _ranges(list(IPV6_SPECIAL))


def _in(ranges: tuple[list[int], list[int]], value: int) -> bool:
    firsts, lasts = ranges
    index = bisect.bisect_right(firsts, value) - 1
    return index >= 0 and value <= lasts[index]


def is_forbidden(address: IPAddress, allowed: Sequence[Network]) -> bool:
    """Whether the relay must not connect to `address`: it is in a special-purpose range (see above), or
    embeds a forbidden IPv4 address, and no network in `allowed` (ORDERS_RELAY_ALLOWED_NETWORKS) holds it."""
    if any(address in network for network in allowed):
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return _in(_FORBIDDEN_V4, int(address))
    if address in IPV4_MAPPED or address in NAT64_WELL_KNOWN:
        return is_forbidden(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), allowed)
    return address not in IPV6_GLOBAL_UNICAST or _in(_FORBIDDEN_V6, int(address))


_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def _well_formed(url: AnyHttpUrl) -> AnyHttpUrl:
    """What WHATWG URL parsing lets through but DNS and sockets do not: labels of 1 to 63 letters, digits,
    hyphens (not at either end) or underscores, at most 253 characters in all, and a port that can be
    connected to. The host is already lower-case and in its ASCII (punycode) form here."""
    host = url.host or ""
    if url.port == 0:
        raise ValueError("port 0 cannot be connected to")
    if host.startswith("["):
        return url  # an IPv6 address, parsed as one
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        pass
    else:
        return url
    name = host.removesuffix(".")
    if len(name) > 253:
        raise ValueError(f"host name is {len(name)} characters long, more than 253")
    for label in name.split("."):
        if len(label) > 63:
            raise ValueError(f"host name label {label[:20]}… is {len(label)} characters long, more than 63")
        if not _LABEL.fullmatch(label):
            raise ValueError(f"host name label {label!r} is not a DNS label")
    return url


EndpointUrl = Annotated[AnyHttpUrl, AfterValidator(_well_formed)]
"""A webhook endpoint's URL as the API's bodies and `orders webhooks add` accept it."""

_ENDPOINT_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(EndpointUrl)


def parse_endpoint_url(url: str, *, require_https: bool) -> AnyHttpUrl:
    """The URL, parsed and normalised, if its form is acceptable: http(s) (https only if required), a
    well-formed host and port, no credentials in it. Raises `UnsafeTarget` with a one-line reason."""
    try:
        parsed = _ENDPOINT_URL.validate_python(url)
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        raise UnsafeTarget(f"not a valid URL: {reason}") from None
    allowed = ("https",) if require_https else ("https", "http")
    if parsed.scheme not in allowed:
        raise UnsafeTarget(f"scheme must be one of {allowed}")
    if parsed.username or parsed.password:
        raise UnsafeTarget("URL must not carry credentials")
    return parsed


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def check_target(url: str, *, require_https: bool, allowed: Sequence[Network]) -> None:
    """Raise `UnsafeTarget` unless the URL's form is acceptable and its host, if that is an address, may be
    called. Before every attempt; no lookup. The address is taken both as the URL parser sees it and as
    the HTTP client will (yarl), so that neither reading of an odd URL reaches an address unchecked: the
    client connects to an address in a URL without asking the resolver, which checks names."""
    _check_target(url, require_https, tuple(allowed))


@functools.lru_cache(maxsize=4096)
def _check_target(url: str, require_https: bool, allowed: tuple[Network, ...]) -> None:
    # The verdict depends on its arguments alone (no lookup), and an endpoint's URL repeats attempt after
    # attempt: remembered, it costs the hot path nothing (parsing it twice is about 15 µs). A refusal is an
    # exception, which is not remembered, but it disables the endpoint.
    host = parse_endpoint_url(url, require_https=require_https).host or ""
    for seen in {host, yarl.URL(url).raw_host or ""}:
        literal = _literal(seen)
        if literal is not None and is_forbidden(literal, allowed):
            raise UnsafeTarget(f"{literal} is not a public address")


class PublicAddressResolver(AbstractResolver):
    """The relay's HTTP client resolves through this: one lookup per new connection, forbidden addresses
    dropped, and the connection made only to what is left (as Svix's webhook client does).

    When nothing is left it raises `UnsafeTarget`, which the worker answers by disabling the endpoint;
    when the lookup fails, `UnresolvableTarget`, a failed attempt.
    """

    def __init__(self, allowed: Sequence[Network], lookup: AbstractResolver | None = None) -> None:
        self._allowed = list(allowed)
        self._lookup = lookup

    async def lookup(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        """Every address the name resolves to now, unfiltered."""
        if self._lookup is None:
            self._lookup = ThreadedResolver()  # needs the running loop: made on first use
        try:
            return await self._lookup.resolve(host, port, family)
        except (OSError, UnicodeError) as error:
            # UnicodeError: the IDNA codec refusing the name, which is no more resolvable than a typo.
            raise UnresolvableTarget(host, error) from None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self.lookup(host, port, family)
        allowed = [answer for answer in answers if not self.forbidden(answer)]
        if not allowed:
            refused = ", ".join(sorted({answer["host"] for answer in answers}))
            raise UnsafeTarget(f"{host} resolves to {refused}, which is not a public address")
        return allowed

    def forbidden(self, answer: ResolveResult) -> bool:
        address = _literal(answer["host"])
        return address is None or is_forbidden(address, self._allowed)

    async def close(self) -> None:
        if self._lookup is not None:
            await self._lookup.close()


async def check_endpoint_url(
    url: str,
    *,
    require_https: bool,
    allowed: Sequence[Network],
    lookup: AbstractResolver | None = None,
) -> str:
    """The URL to store for a new endpoint (normalised), if the relay may call it: its form is acceptable,
    and every address its host resolves to now may be called. Raises `UnsafeTarget`, or
    `UnresolvableTarget` for a name that does not resolve. The API and `orders webhooks add` both call this.

    Stricter than a delivery, which drops the forbidden addresses of an answer and connects to the rest: a
    name that leads even partly inside is refused here, while the person registering it can still fix it.
    """
    parsed = parse_endpoint_url(url, require_https=require_https)
    host = parsed.host or ""
    literal = _literal(host)
    if literal is not None:
        if is_forbidden(literal, allowed):
            raise UnsafeTarget(f"{literal} is not a public address")
        return str(parsed)
    resolver = PublicAddressResolver(allowed, lookup)
    try:
        answers = await resolver.lookup(host, parsed.port or 0)
    finally:
        if lookup is None:
            await resolver.close()
    refused = sorted({answer["host"] for answer in answers if resolver.forbidden(answer)})
    if refused:
        raise UnsafeTarget(f"{host} resolves to {', '.join(refused)}, which is not a public address")
    return str(parsed)
