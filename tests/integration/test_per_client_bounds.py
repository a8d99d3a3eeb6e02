"""Per-client bounds on the real Redis and the HTTP API: endpoints and API keys are capped per client, and
each API key has a request rate of its own."""

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest
from redis.asyncio import Redis

from contracts.limits import API_KEYS_PER_CLIENT, WEBHOOK_ENDPOINTS_PER_CLIENT
from service.config import Settings
from service.devstack import Endpoints
from service.store.authentication import REVOKED_KEY_RETENTION_SECONDS, ApiKeyStore
from service.store.capped_sets import LimitReached
from service.store.keys import api_key_bucket_key, api_key_key, client_api_keys_key, webhook_endpoint_key
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique
from tests.integration.conftest import serving_api

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_seventeenth_endpoint_is_refused_and_a_deletion_makes_room(store_redis: Redis) -> None:
    """The cap holds on one node and on a Cluster; another client's endpoints do not count."""
    endpoints = EndpointStore(store_redis)
    client, other = unique("capped"), unique("other")
    registered = [
        await endpoints.create(client, f"https://hooks.example.com/{n}", NOW)
        for n in range(WEBHOOK_ENDPOINTS_PER_CLIENT)
    ]

    with pytest.raises(LimitReached, match="at most 16 webhook endpoints"):
        await endpoints.create(client, "https://hooks.example.com/17", NOW)
    assert len(await endpoints.for_client(client)) == 16
    assert len(await endpoints.all_ids()) == len(set(await endpoints.all_ids()))  # nothing half-registered
    assert (await endpoints.create(other, "https://hooks.example.com/other", NOW)).client_id == other

    await endpoints.delete(registered[0])
    room = await endpoints.create(client, "https://hooks.example.com/again", NOW)
    assert room.endpoint_id in {e.endpoint_id for e in await endpoints.for_client(client)}
    assert await store_redis.ttl(webhook_endpoint_key(room.endpoint_id)) == -1  # admitted: kept


async def test_a_refused_endpoint_leaves_no_record(redis: Redis) -> None:
    """The provisional record of a refused registration is deleted: the workers never see it."""
    endpoints = EndpointStore(redis)
    client = unique("capped")
    await endpoints.create(client, "https://hooks.example.com/1", NOW, limit=1)
    before = set(await redis.keys("webhook:{ep_*}"))

    with pytest.raises(LimitReached):
        await endpoints.create(client, "https://hooks.example.com/2", NOW, limit=1)

    assert set(await redis.keys("webhook:{ep_*}")) == before


async def test_an_endpoint_whose_record_is_gone_stops_counting(redis: Redis) -> None:
    """A crash after admission and before the record is kept leaves a member without a record (it expires):
    the next registration that finds the set full drops it instead of refusing."""
    endpoints = EndpointStore(redis)
    client = unique("crashed")
    lost = await endpoints.create(client, "https://hooks.example.com/lost", NOW, limit=1)
    await redis.delete(webhook_endpoint_key(lost.endpoint_id))  # what the expiry leaves

    kept = await endpoints.create(client, "https://hooks.example.com/kept", NOW, limit=1)

    assert [e.endpoint_id for e in await endpoints.for_client(client)] == [kept.endpoint_id]


async def test_api_keys_are_capped_per_client_and_revoking_one_makes_room(store_redis: Redis) -> None:
    """Only unrevoked keys count; a revoked key's record is forgotten after its retention."""
    keys = ApiKeyStore(store_redis)
    client = unique("keys")
    issued = [await keys.issue(client, NOW) for _ in range(API_KEYS_PER_CLIENT)]

    with pytest.raises(LimitReached, match="at most 10 unrevoked API keys"):
        await keys.issue(client, NOW)
    assert await keys.revoke(issued[0].key_id, NOW)
    again = await keys.issue(client, NOW)

    assert await store_redis.scard(client_api_keys_key(client)) == API_KEYS_PER_CLIENT
    assert await store_redis.ttl(api_key_key(again.key_id)) == -1
    revoked_ttl = await store_redis.ttl(api_key_key(issued[0].key_id))
    assert REVOKED_KEY_RETENTION_SECONDS - 60 < revoked_ttl <= REVOKED_KEY_RETENTION_SECONDS


async def test_keys_revoked_before_the_cap_existed_stop_counting(redis: Redis) -> None:
    """Keys revoked by an earlier version stayed in the client's set: a full set drops them."""
    keys = ApiKeyStore(redis)
    client = unique("upgraded")
    old = await keys.issue(client, NOW, limit=1)
    await redis.hset(api_key_key(old.key_id), "revoked_at", NOW.isoformat())

    new = await keys.issue(client, NOW, limit=1)

    assert await redis.smembers(client_api_keys_key(client)) == {new.key_id.encode()}


async def test_the_api_answers_the_seventeenth_endpoint_with_409(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """A problem document with a stable code and the limit; the endpoints registered before still work."""
    headers = bearer((await ApiKeyStore(redis).issue(unique("api-capped"), NOW)).token)
    for n in range(WEBHOOK_ENDPOINTS_PER_CLIENT):
        created = await api.post(
            "/v1/webhook-endpoints", json={"url": f"http://127.0.0.1/{n}"}, headers=headers
        )
        assert created.status_code == 201, created.text

    refused = await api.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1/17"}, headers=headers)

    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert (refused.json()["code"], refused.json()["limit"]) == ("LIMIT_REACHED", 16)
    assert "at most 16 webhook endpoints" in refused.json()["detail"]
    assert len((await api.get("/v1/webhook-endpoints", headers=headers)).json()) == 16


async def test_a_key_over_its_rate_gets_429_with_retry_after_and_others_are_served(
    settings: Settings, redis: Redis
) -> None:
    """A token bucket per key: the burst goes through, the next request is 429 with `Retry-After`; another
    key of the same client and a key of another client are served meanwhile; the key recovers."""
    keys = ApiKeyStore(redis)
    client = unique("busy")
    busy, calm = await keys.issue(client, NOW), await keys.issue(client, NOW)
    stranger = await keys.issue(unique("stranger"), NOW)
    async with serving_api(settings, api_rate_per_second=5, api_rate_burst=3) as api:

        async def status_of(key: str) -> int:
            return (await api.get("/v1/orders", headers=bearer(key))).status_code

        burst = [await status_of(busy.token) for _ in range(3)]
        limited = await api.get("/v1/orders", headers=bearer(busy.token))
        others = [await status_of(calm.token), await status_of(stranger.token)]
        bucket_ttl = await redis.pttl(api_key_bucket_key(busy.key_id))
        await asyncio.sleep(float(limited.headers["Retry-After"]))  # what a client is told to do
        recovered = await status_of(busy.token)

    assert burst == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.json()["code"] == "RATE_LIMITED"
    assert others == [200, 200]
    assert recovered == 200
    assert 0 < bucket_ttl <= 3 * 1000 / 5 + 1000  # the bucket is forgotten once it would be full again


async def test_requests_with_a_wrong_secret_take_nothing_from_the_keys_bucket(
    settings: Settings, redis: Redis
) -> None:
    """Someone who knows a key's id but not its secret cannot spend its rate (and so cannot starve it)."""
    issued = await ApiKeyStore(redis).issue(unique("victim"), NOW)
    forged = f"ok_{issued.key_id}_not-the-secret"
    async with serving_api(settings, api_rate_per_second=1, api_rate_burst=1) as api:
        forged_statuses = [
            (await api.get("/v1/orders", headers=bearer(forged))).status_code for _ in range(5)
        ]
        genuine = await api.get("/v1/orders", headers=bearer(issued.token))

    assert forged_statuses == [401] * 5
    assert genuine.status_code == 200


def _cli(stack: Endpoints, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **stack.environ(), "ORDERS_RELAY_REQUIRE_HTTPS": "false", **env}
    command = [sys.executable, "-m", "service.cli", *args]
    return subprocess.run(command, env=environ, capture_output=True, text=True, check=False)


def test_the_cli_refuses_a_key_or_an_endpoint_beyond_the_bound(stack: Endpoints) -> None:
    """One line on stderr naming the setting, and a failing exit status."""
    client = unique("cli-capped")
    bound = {"ORDERS_MAX_API_KEYS_PER_CLIENT": "1", "ORDERS_MAX_WEBHOOK_ENDPOINTS_PER_CLIENT": "1"}
    add = ["webhooks", "add", "--client", client, "--url", "http://93.184.215.14/hooks"]

    first_key, second_key = (_cli(stack, "client", "create", "--client", client, **bound) for _ in range(2))
    first_endpoint, second_endpoint = (_cli(stack, *add, **bound) for _ in range(2))

    assert (first_key.returncode, first_endpoint.returncode) == (0, 0)
    assert second_key.returncode == 2
    assert second_key.stderr.count("\n") == 1
    assert "at most 1 unrevoked API keys" in second_key.stderr
    assert "ORDERS_MAX_API_KEYS_PER_CLIENT" in second_key.stderr
    assert second_endpoint.returncode == 1
    assert "at most 1 webhook endpoints" in second_endpoint.stderr
    assert "ORDERS_MAX_WEBHOOK_ENDPOINTS_PER_CLIENT" in second_endpoint.stderr
