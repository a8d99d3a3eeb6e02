"""Webhook targets that would point the relay at its own network are refused."""

import ipaddress

import pytest
from pydantic import ValidationError

from service.config import RelaySettings
from service.relay.safety import UnresolvableTarget, UnsafeTarget, check_target, check_url_form

LOOPBACK_ALLOWED = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped private address
        "http://0.0.0.0/hook",
    ],
)
async def test_private_loopback_and_metadata_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        await check_target(url, require_https=False, allowed=[])


async def test_a_configured_network_may_be_allowed() -> None:
    """The tests allow loopback; production allows nothing unless configured."""
    await check_target("http://127.0.0.1:9/hook", require_https=False, allowed=LOOPBACK_ALLOWED)
    with pytest.raises(UnsafeTarget):
        await check_target("http://10.0.0.1/hook", require_https=False, allowed=LOOPBACK_ALLOWED)


@pytest.mark.parametrize(
    ("url", "require_https"),
    [
        ("http://example.com/hook", True),
        ("ftp://example.com/", False),
        ("https://user:pw@example.com/", False),
    ],
)
def test_url_form_is_checked(url: str, require_https: bool) -> None:
    """https in production, no other schemes, no credentials in the URL."""
    with pytest.raises(UnsafeTarget):
        check_url_form(url, require_https=require_https)


async def test_a_host_that_does_not_resolve_is_a_failure_to_retry_not_a_verdict() -> None:
    """DNS trouble may pass: it must not disable the endpoint the way an unsafe address does."""
    with pytest.raises(UnresolvableTarget):
        await check_target("https://no-such-host.invalid/hook", require_https=True, allowed=[])


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
