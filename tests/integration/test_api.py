"""The HTTP API served for real on loopback, with the order service behind it on the real broker and Redis."""

from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.commands import CancelOrder
from service.config import Settings
from service.store.authentication import ApiKeyStore
from testkit.api_keys import issue_key
from testkit.factories import prebooking, unique
from testkit.kafka_tap import produce
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("service", "simulator")


async def key_for(redis: Redis, client_id: str) -> dict[str, str]:
    issued = await issue_key(redis, client_id)
    return {"Authorization": f"Bearer {issued.token}"}


async def confirmed_order(producer: AIOKafkaProducer, settings: Settings, client_id: str) -> str:
    command = prebooking(client_id=client_id)
    await produce(producer, settings.topic_commands, command, command.order_id)
    return command.order_id


async def test_order_seen_through_the_api_while_commands_flow_over_kafka(
    api: httpx.AsyncClient, settings: Settings, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Created over Kafka, confirmed by the resource: the API shows status 1, the ONE Order view and an ETag;
    polling with that ETag costs a 304 until the order changes."""
    headers = await key_for(redis, "client-a")
    order_id = await confirmed_order(producer, settings, "client-a")

    async def confirmed() -> httpx.Response | None:
        response = await api.get(f"/v1/orders/{order_id}", headers=headers)
        return response if response.status_code == 200 and response.json()["status"] == 1 else None

    response = await eventually(confirmed)
    body = response.json()
    assert (body["status_name"], body["sequence"], body["order_type"]) == ("Confirmed", 2, "PREBOOKING")
    assert body["order"]["status"] == "OPENED"
    assert response.headers["etag"] == '"2"'

    unchanged = await api.get(f"/v1/orders/{order_id}", headers={**headers, "If-None-Match": '"2"'})
    assert (unchanged.status_code, unchanged.content) == (304, b"")

    cancel = CancelOrder(command_id=unique("cmd"), client_id="client-a", order_id=order_id)
    await produce(producer, settings.topic_commands, cancel, order_id)

    async def changed() -> httpx.Response | None:
        response = await api.get(f"/v1/orders/{order_id}", headers={**headers, "If-None-Match": '"2"'})
        return response if response.status_code == 200 else None

    after = await eventually(changed)
    assert (after.json()["status"], after.headers["etag"]) == (3, '"3"')


async def test_missing_unknown_and_revoked_keys_are_401(api: httpx.AsyncClient, redis: Redis) -> None:
    """No key, a made-up key, and a key revoked a moment ago are all refused, as problem details."""
    keys = ApiKeyStore(redis)
    issued = await issue_key(redis, "client-a")
    good = {"Authorization": f"Bearer {issued.token}"}
    assert (await api.get("/v1/orders/ORD-NONE", headers=good)).status_code == 404

    await keys.revoke(issued.key_id, datetime.now(UTC))

    for headers in ({}, {"Authorization": "Bearer ok_0000_made-up"}, good):
        response = await api.get("/v1/orders/ORD-NONE", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "UNAUTHENTICATED"


async def test_another_clients_order_looks_exactly_like_a_missing_one(
    api: httpx.AsyncClient, settings: Settings, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """No existence leak: the same 404 body for someone else's order as for one that does not exist."""
    owner, stranger = await key_for(redis, "client-a"), await key_for(redis, "client-b")
    order_id = await confirmed_order(producer, settings, "client-a")
    await eventually(lambda: _status(api, order_id, owner, 200))

    theirs = await api.get(f"/v1/orders/{order_id}", headers=stranger)
    missing = await api.get("/v1/orders/ORD-DOES-NOT-EXIST", headers=stranger)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()


async def _status(api: httpx.AsyncClient, order_id: str, headers: dict[str, str], status: int) -> bool:
    return (await api.get(f"/v1/orders/{order_id}", headers=headers)).status_code == status


async def test_health_readiness_and_metrics(api: httpx.AsyncClient) -> None:
    """Alive, ready (Redis and Kafka answer), both contract documents served, Prometheus text."""
    assert (await api.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await api.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]) == (200, {"redis": "ok", "kafka": "ok"})
    asyncapi = await api.get("/asyncapi.json")
    openapi = await api.get("/openapi.json")
    assert asyncapi.json()["asyncapi"] == "3.0.0" and "/v1/orders/{order_id}" in openapi.json()["paths"]
    metrics = await api.get("/metrics")
    assert metrics.status_code == 200
    assert "orders_inputs_applied_total" in metrics.text
