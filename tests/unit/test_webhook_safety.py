"""Webhook targets that would point the relay at its own network are refused."""

import ipaddress
import re
import socket

import pytest
from hypothesis import given
from hypothesis.strategies import ip_addresses
from pydantic import ValidationError

from service.config import RelaySettings
from service.relay.safety import (
    IPV4_SPECIAL,
    IPV6_SPECIAL,
    Network,
    PublicAddressResolver,
    UnresolvableTarget,
    UnsafeTarget,
    check_endpoint_url,
    check_target,
    is_forbidden,
    parse_endpoint_url,
)
from testkit.stub_dns import StubDns

LOOPBACK_ALLOWED = [ipaddress.ip_network("127.0.0.0/8")]

# Every range of the IANA special-purpose registries, and the others the guard refuses, by where the brief
# and the registries name them. The tables in safety.py must hold at least these.
IPV4_RANGES = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
]
IPV6_RANGES = [
    "::/128",
    "::1/128",
    "::/96",  # IPv4-compatible
    "::ffff:0:0:0/96",  # IPv4-translated
    "64:ff9b:1::/48",  # NAT64 local use
    "100::/64",
    "100:0:0:1::/64",
    "2001::/23",
    "2001::/32",  # Teredo
    "2001:2::/48",
    "2001:db8::/32",
    "2002::/16",  # 6to4
    "2620:4f:8000::/48",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
]


def _samples(network: Network) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The first, a middle and the last address of the network."""
    first, last = int(network.network_address), int(network.broadcast_address)
    return [ipaddress.ip_address(n) for n in {first, (first + last) // 2, last}]


@pytest.mark.parametrize("cidr", IPV4_RANGES + IPV6_RANGES)
def test_every_address_of_every_special_purpose_range_is_forbidden(cidr: str) -> None:
    """First, middle and last address of each range; and each range is in the documented tables."""
    network = ipaddress.ip_network(cidr)
    assert cidr in IPV4_SPECIAL or cidr in IPV6_SPECIAL
    for address in _samples(network):
        assert is_forbidden(address, []), address


@pytest.mark.parametrize(
    "cidr",
    ["64:ff9b::/96", "::ffff:0:0/96"],  # NAT64 well-known prefix, IPv4-mapped
)
@pytest.mark.parametrize(
    ("embedded", "forbidden"),
    [(network, True) for network in IPV4_RANGES] + [("8.8.8.0/24", False), ("93.184.215.14/32", False)],
)
def test_an_address_embedding_ipv4_by_nat64_or_mapping_is_judged_by_that_ipv4(
    cidr: str, embedded: str, forbidden: bool
) -> None:
    """A NAT64 gateway and a dual-stack socket connect to the embedded IPv4 address: it decides (see the
    comment in safety.py on why these two prefixes are not forbidden whole)."""
    prefix = int(ipaddress.IPv6Network(cidr).network_address)
    for ipv4 in _samples(ipaddress.IPv4Network(embedded)):
        address = ipaddress.IPv6Address(prefix | int(ipv4))
        assert is_forbidden(address, []) is forbidden, address


@pytest.mark.parametrize(
    "address",
    [
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1
        "::ffff:0:808:808",  # IPv4-translated, even of a public address: the prefix is forbidden whole
        "::8.8.8.8",  # IPv4-compatible, likewise
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:808:808::1",  # 6to4 of a public address
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b:1::808:808",  # local-use NAT64
        "fec0::1",  # site-local
        "4000::1",  # outside 2000::/3, unallocated
        "fe80::1%eth0",  # link-local with a zone
    ],
)
def test_ipv6_forms_that_embed_or_hide_an_internal_address_are_forbidden(address: str) -> None:
    """The forms the issue found passing the guard."""
    assert is_forbidden(ipaddress.ip_address(address), [])


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.215.14",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450::1",
        # Just outside a forbidden range: the ranges are no wider than the registries say.
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.0.3.0",
        "192.88.98.255",
        "192.88.100.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "203.0.112.255",
        "203.0.114.0",
        "223.255.255.255",
        "2001:200::1",  # right after 2001::/23
        "2001:db9::1",
        "2003::1",
        "3ffe:ffff::1",  # right before 3fff::/20
        "3fff:1000::1",  # right after it
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address), [])


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", "127.0.0.0/8"),
        ("::ffff:127.0.0.1", "127.0.0.0/8"),
        ("64:ff9b::7f00:1", "127.0.0.0/8"),
        ("10.20.3.4", "10.20.0.0/16"),
        ("fd00::1", "fd00::/8"),
        ("2002:7f00:1::", "2002::/16"),
    ],
)
def test_an_allowed_network_wins_over_every_range(address: str, allowed: str) -> None:
    """ORDERS_RELAY_ALLOWED_NETWORKS is the operator's word: it allows what the registries forbid."""
    assert not is_forbidden(ipaddress.ip_address(address), [ipaddress.ip_network(allowed)])


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped private address
        "http://[::127.0.0.1]/hook",
        "http://[::ffff:0:7f00:1]/hook",
        "http://[2002:7f00:1::]/hook",
        "http://[64:ff9b::a00:1]/hook",
        "http://[fec0::1]/hook",
        "http://0.0.0.0/hook",
        "http://0x7f.1/hook",  # 127.0.0.1 spelt the old way
        "http://2130706433/hook",  # and as one number
    ],
)
def test_an_address_in_the_url_is_checked_before_every_attempt(url: str) -> None:
    """aiohttp connects to an address in the URL without asking the resolver: `check_target` refuses it."""
    with pytest.raises(UnsafeTarget):
        check_target(url, require_https=False, allowed=[])


async def test_an_address_in_the_url_is_refused_at_registration(dns: StubDns) -> None:
    """The same verdict when the endpoint is registered, without a lookup."""
    for url in ("http://10.1.2.3/hook", "http://[::127.0.0.1]/hook", "http://[64:ff9b::a00:1]/"):
        with pytest.raises(UnsafeTarget, match="not a public address"):
            await check_endpoint_url(url, require_https=False, allowed=[], lookup=dns)
    assert dns.lookups == []


@pytest.fixture
def dns() -> StubDns:
    """A DNS that knows a few names, and records what it was asked."""
    return StubDns(
        {
            "hooks.example.com": [["93.184.215.14"]],
            "inside.example.com": [["10.0.0.7"]],
            "mixed.example.com": [["93.184.215.14", "127.0.0.1"]],
            "v6.example.com": [["2606:4700:4700::1111", "fe80::1"]],
        }
    )


def test_a_name_is_not_looked_up_before_an_attempt() -> None:
    """No lookup (a thread hop) per attempt: the client's resolver checks a name when it connects."""
    check_target("http://no-such-host.invalid/hook", require_https=False, allowed=[])


async def test_the_resolver_connects_only_to_the_allowed_addresses_of_an_answer(
    dns: StubDns,
) -> None:
    """Forbidden addresses are dropped from the answer; what is left is all the connector sees."""
    resolver = PublicAddressResolver([], dns)

    mixed = await resolver.resolve("mixed.example.com", 443, socket.AF_UNSPEC)
    v6 = await resolver.resolve("v6.example.com", 443, socket.AF_UNSPEC)

    assert [answer["host"] for answer in mixed] == ["93.184.215.14"]
    assert [answer["host"] for answer in v6] == ["2606:4700:4700::1111"]
    assert dns.lookups == ["mixed.example.com", "v6.example.com"], "one lookup each"


async def test_the_resolver_refuses_a_name_with_no_allowed_address_and_fails_one_that_does_not_resolve(
    dns: StubDns,
) -> None:
    """Nothing left is a verdict (the worker disables the endpoint); no answer is a failed attempt."""
    resolver = PublicAddressResolver([], dns)

    with pytest.raises(UnsafeTarget, match=re.escape("inside.example.com resolves to 10.0.0.7")):
        await resolver.resolve("inside.example.com", 443)
    with pytest.raises(UnresolvableTarget, match=re.escape("cannot resolve unknown.example.com")):
        await resolver.resolve("unknown.example.com", 443)
    allowing = PublicAddressResolver([ipaddress.ip_network("10.0.0.0/8")], dns)
    assert [answer["host"] for answer in await allowing.resolve("inside.example.com", 443)] == ["10.0.0.7"]


async def test_registration_refuses_a_name_that_leads_even_partly_inside(dns: StubDns) -> None:
    """Stricter than a delivery: the registrant is there to fix the name."""
    for name in ("inside.example.com", "mixed.example.com", "v6.example.com"):
        with pytest.raises(UnsafeTarget, match=re.escape(f"{name} resolves to")):
            await check_endpoint_url(f"https://{name}/hook", require_https=True, allowed=[], lookup=dns)


async def test_registration_stores_the_url_normalised(dns: StubDns) -> None:
    """What is stored is the parsed URL, the same whichever door it came in by."""
    url = await check_endpoint_url(
        "HTTPS://Hooks.Example.COM:443/a/../orders?x=1", require_https=True, allowed=[], lookup=dns
    )
    assert url == "https://hooks.example.com/orders?x=1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://" + "a" * 64 + ".example.com/hook", "label a"),
        ("http://" + ("a" * 60 + ".") * 5 + "com/", "more than 253"),
        ("http://example.com:99999/hook", "invalid port"),
        ("http://example.com:0/hook", "port 0"),
        ("http://a..example.com/hook", "label ''"),
        ("http://-bad-.example.com/hook", "label '-bad-'"),
        ("http://exa mple.com/hook", "not a valid URL"),
        ("https://[::1/hook", "not a valid URL"),
        ("not a url", "not a valid URL"),
        ("ftp://example.com/", "not a valid URL"),
        ("https://user:pw@example.com/", "credentials"),
        ("http://example.com/hook", "scheme"),
    ],
)
async def test_a_malformed_url_is_refused_in_one_line_before_any_lookup(
    url: str, reason: str, dns: StubDns
) -> None:
    """The cases that crashed (a 64-character label: a 500 in the API) or were stored as typed (port
    99999); https required here, as in production."""
    with pytest.raises(UnsafeTarget, match=reason) as refused:
        await check_endpoint_url(url, require_https=True, allowed=[], lookup=dns)
    assert "\n" not in str(refused.value)
    assert dns.lookups == []
    with pytest.raises(UnsafeTarget):
        parse_endpoint_url(url, require_https=True)


async def test_a_host_that_does_not_resolve_is_a_failure_to_retry_not_a_verdict() -> None:
    """DNS trouble may pass: it must not disable the endpoint the way an unsafe address does."""
    with pytest.raises(UnresolvableTarget):
        await check_endpoint_url("https://no-such-host.invalid/hook", require_https=True, allowed=[])


async def test_a_configured_network_may_be_allowed() -> None:
    """The tests allow loopback; production allows nothing unless configured."""
    check_target("http://127.0.0.1:9/hook", require_https=False, allowed=LOOPBACK_ALLOWED)
    with pytest.raises(UnsafeTarget):
        check_target("http://10.0.0.1/hook", require_https=False, allowed=LOOPBACK_ALLOWED)


def test_allowed_networks_are_parsed_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """ORDERS_RELAY_ALLOWED_NETWORKS stays a JSON list of CIDRs; the settings hold the parsed networks."""
    monkeypatch.setenv("ORDERS_RELAY_ALLOWED_NETWORKS", '["127.0.0.0/8", "fd00::/8"]')
    assert RelaySettings().relay_allowed_networks == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    ]


@pytest.mark.parametrize(("network", "reason"), [("10.0.0.1/8", "host bits set"), ("intranet", "does not")])
def test_a_malformed_allowed_network_fails_the_settings(network: str, reason: str) -> None:
    """A typo in the allowed networks stops the process at start, saying what is wrong, not at first use."""
    with pytest.raises(ValidationError, match=f"relay_allowed_networks.0\n.*not a network in CIDR.*{reason}"):
        RelaySettings(relay_allowed_networks=[network])


async def test_a_name_of_this_machine_is_refused_at_registration() -> None:
    """`localhost` resolves (through the real resolver) to loopback only."""
    with pytest.raises(UnsafeTarget, match="localhost resolves to"):
        await check_endpoint_url("http://localhost:8080/hook", require_https=False, allowed=[])


def test_a_remembered_verdict_is_still_the_verdict_for_other_settings() -> None:
    """The delivery-time check remembers its verdicts per URL and settings, not per URL alone."""
    check_target("http://127.0.0.1:9/hook", require_https=False, allowed=LOOPBACK_ALLOWED)
    with pytest.raises(UnsafeTarget):
        check_target("http://127.0.0.1:9/hook", require_https=False, allowed=[])
    with pytest.raises(UnsafeTarget, match="scheme"):
        check_target("http://127.0.0.1:9/hook", require_https=True, allowed=LOOPBACK_ALLOWED)


@given(ip_addresses())
def test_whatever_python_does_not_call_global_is_forbidden(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """A cross-check against `ipaddress`'s own list (Hypothesis oversamples the special-purpose ranges):
    the tables forbid at least what it calls non-global, except the two prefixes decided by the IPv4
    address inside, where the embedded address decides instead."""
    embedding = isinstance(address, ipaddress.IPv6Address) and (
        address in ipaddress.ip_network("::ffff:0:0/96") or address in ipaddress.ip_network("64:ff9b::/96")
    )
    if not embedding and not address.is_global:
        assert is_forbidden(address, [])
