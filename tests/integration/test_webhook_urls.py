"""Endpoint URLs at the edges: the API and `orders webhooks add` accept and refuse the same URLs, in one
line or one 422, and store a URL they accept in the same normalised form."""

import json
import os
import subprocess
import sys

import httpx
import pytest
from redis.asyncio import Redis

from service.devstack import Endpoints
from testkit.api_keys import issue_key
from testkit.factories import unique

LONG_LABEL = "a" * 64

REFUSED = [
    pytest.param(f"http://{LONG_LABEL}.example.com/hooks", "more than 63", id="64-character label"),
    pytest.param("http://93.184.215.14:99999/hooks", "invalid port", id="port 99999"),
    pytest.param("http://93.184.215.14:0/hooks", "port 0", id="port 0"),
    pytest.param("http://a..example.com/hooks", "is not a DNS label", id="empty label"),
    pytest.param("http://exa mple.com/hooks", "invalid international domain name", id="space in the host"),
    pytest.param(
        "http://no-such-host.invalid/hooks", "cannot resolve no-such-host.invalid", id="unresolvable"
    ),
    pytest.param("http://[::127.0.0.1]/hooks", "not a public address", id="IPv4-compatible loopback"),
    pytest.param("http://[64:ff9b::a00:1]/hooks", "not a public address", id="NAT64 of 10.0.0.1"),
]


def _orders(stack: Endpoints, *args: str) -> subprocess.CompletedProcess[str]:
    """`orders webhooks …` as an operator runs it (http allowed, nothing else: production's networks)."""
    env = {**os.environ, **stack.environ(), "ORDERS_RELAY_REQUIRE_HTTPS": "false"}
    env.pop("ORDERS_RELAY_ALLOWED_NETWORKS", None)
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "webhooks", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_the_cli_refuses_a_bad_url_in_one_line_and_stores_nothing(
    stack: Endpoints, url: str, reason: str
) -> None:
    """No traceback, one line naming the reason, a failing exit status, and no endpoint."""
    client = unique("cli-url")

    added = _orders(stack, "add", "--client", client, "--url", url)
    listed = _orders(stack, "list", "--client", client)

    assert added.returncode == 1, added.stderr
    assert added.stdout == ""
    assert added.stderr.startswith("refused: ") and added.stderr.count("\n") == 1, added.stderr
    assert reason in added.stderr
    assert "Traceback" not in added.stderr
    assert listed.returncode == 0 and listed.stdout == ""


async def _bearer(redis: Redis, client_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await issue_key(redis, client_id)).token}"}


@pytest.mark.parametrize(("url", "reason"), REFUSED)
async def test_the_api_refuses_a_bad_url_with_422_never_500(
    api: httpx.AsyncClient, redis: Redis, url: str, reason: str
) -> None:
    """On create and on PATCH: `422 INVALID_REQUEST`, with the reason in `errors` (the URL's form) or in
    `detail` (where it leads); the endpoint keeps its URL."""
    headers = await _bearer(redis, unique("api-url"))
    good = await api.post(
        "/v1/webhook-endpoints", json={"url": "http://93.184.215.14/hooks"}, headers=headers
    )
    path = f"/v1/webhook-endpoints/{good.json()['endpoint_id']}"

    created = await api.post("/v1/webhook-endpoints", json={"url": url}, headers=headers)
    patched = await api.patch(path, json={"url": url}, headers=headers)

    for refused in (created, patched):
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["code"] == "INVALID_REQUEST"
        assert reason in json.dumps(problem)
    listed = (await api.get("/v1/webhook-endpoints", headers=headers)).json()
    assert [e["url"] for e in listed] == ["http://93.184.215.14/hooks"]


async def test_the_api_and_the_cli_store_a_url_in_the_same_normalised_form(
    api: httpx.AsyncClient, redis: Redis, stack: Endpoints
) -> None:
    """One parser for both doors: scheme and host lower-cased, default port and dot segments dropped."""
    typed = "HTTP://93.184.215.14:80/a/../hooks?x=1"
    client = unique("normalised")
    headers = await _bearer(redis, client)

    by_api = (await api.post("/v1/webhook-endpoints", json={"url": typed}, headers=headers)).json()
    by_cli = json.loads(_orders(stack, "add", "--client", client, "--url", typed).stdout)

    assert by_api["url"] == by_cli["url"] == "http://93.184.215.14/hooks?x=1"
