"""Every API route: authentication, tenancy, malformed input, commands end to end, paging, webhooks."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from service.config import RelaySettings, Settings
from service.relay.app import build_relay
from service.store.keys import webhook_endpoint_key
from testkit.api_keys import issue_key
from testkit.factories import SERVICE_DATE, unique
from testkit.webhook_receiver import WebhookReceiver
from tests.integration.conftest import api_settings, until_assigned
from tests.waiting import eventually

pytestmark = pytest.mark.usefixtures("service", "simulator")

ITEM = {
    "resource_id": "RES-OK",
    "product_type": "FAST_TRACK",
    "service_date": SERVICE_DATE.isoformat(),
    "passengers": [{"passenger_id": "PAX-1", "name": "Ada"}],
}

ROUTES = [
    ("GET", "/v1/orders/{order}", None),
    ("GET", "/v1/orders", None),
    ("POST", "/v1/orders", {"order_id": "X", "items": [ITEM]}),
    (
        "POST",
        "/v1/walk-ins",
        {
            "order_id": "X",
            "resource_id": "L",
            "product_type": "LOUNGE",
            "credential": "C",
            "passengers": [{"passenger_id": "P", "name": "N"}],
        },
    ),
    ("POST", "/v1/orders/{order}/cancel", {}),
    ("POST", "/v1/orders/{order}/redeem", {}),
    ("GET", "/v1/commands/{command}", None),
    ("GET", "/v1/webhook-endpoints", None),
    ("POST", "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hooks"}),
    ("GET", "/v1/webhook-endpoints/{endpoint}", None),
    ("PATCH", "/v1/webhook-endpoints/{endpoint}", {"description": "x"}),
    ("POST", "/v1/webhook-endpoints/{endpoint}/disable", None),
    ("POST", "/v1/webhook-endpoints/{endpoint}/enable", None),
    ("POST", "/v1/webhook-endpoints/{endpoint}/rotate-secret", {}),
    ("GET", "/v1/webhook-endpoints/{endpoint}/attempts", None),
    ("POST", "/v1/webhook-endpoints/{endpoint}/replay", {"event_id": "e"}),
    ("DELETE", "/v1/webhook-endpoints/{endpoint}", None),
]
SCOPED = [route for route in ROUTES if "{" in route[1]]


async def bearer(redis: Redis, client_id: str) -> dict[str, str]:
    issued = await issue_key(redis, client_id)
    return {"Authorization": f"Bearer {issued.token}"}


async def create_order(api: httpx.AsyncClient, headers: dict[str, str], order_id: str | None = None) -> str:
    order_id = order_id or unique("ORD")
    response = await api.post("/v1/orders", json={"order_id": order_id, "items": [ITEM]}, headers=headers)
    assert response.status_code == 202, response.text
    return order_id


async def order_status(api: httpx.AsyncClient, order_id: str, headers: dict[str, str]) -> int | None:
    response = await api.get(f"/v1/orders/{order_id}", headers=headers)
    return int(response.json()["status"]) if response.status_code == 200 else None


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_every_route_needs_a_key(api: httpx.AsyncClient, method: str, path: str, body: object) -> None:
    """Without a valid key every route answers 401 problem details."""
    response = await api.request(method, path.format(order="O", endpoint="E", command="C"), json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHENTICATED"


async def test_every_scoped_route_answers_404_for_another_clients_resources(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """Orders, commands and endpoints of another client are 404 on every route, exactly like missing ones."""
    owner, stranger = await bearer(redis, "client-a"), await bearer(redis, "client-b")
    command_id = unique("create")
    order_id = await create_order(api, {**owner, "Idempotency-Key": command_id})
    await eventually(lambda: order_status(api, order_id, owner))
    created = await api.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"}, headers=owner)
    endpoint_id = created.json()["endpoint_id"]

    for method, path, body in SCOPED:
        theirs = await api.request(
            method,
            path.format(order=order_id, endpoint=endpoint_id, command=command_id),
            json=body,
            headers=stranger,
        )
        missing = await api.request(
            method, path.format(order="NOPE", endpoint="NOPE", command="NOPE"), json=body, headers=stranger
        )
        assert theirs.status_code == missing.status_code == 404, (method, path)
        assert theirs.json() == missing.json()
    assert (await api.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=owner)).status_code == 200
    assert (await api.get(f"/v1/commands/{command_id}", headers=owner)).status_code == 200


async def test_commands_over_http_drive_the_order_and_idempotency_key_dedupes(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """POST creates (202), the resource confirms, redeem makes it Used; the same Idempotency-Key twice is
    one command."""
    headers = await bearer(redis, "client-a")
    order_id = unique("ORD")
    key = {"Idempotency-Key": unique("idem")}
    for _ in range(2):
        await create_order(api, {**headers, **key}, order_id)
    await eventually(lambda: _is(api, order_id, headers, 1))

    redeemed = await api.post(f"/v1/orders/{order_id}/redeem", json={}, headers=headers)
    assert redeemed.status_code == 202
    await eventually(lambda: _is(api, order_id, headers, 2))
    assert (await api.get(f"/v1/orders/{order_id}", headers=headers)).json()["sequence"] == 3


async def _is(api: httpx.AsyncClient, order_id: str, headers: dict[str, str], status: int) -> bool:
    return await order_status(api, order_id, headers) == status


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"order_id": "X", "items": [ITEM], "surprise": 1}, 422),  # unknown field
        ({"order_id": "X", "items": []}, 422),  # no items
        ({"order_id": "X{1}", "items": [ITEM]}, 422),  # not an identifier
        (b"not json", 422),
        (b'{"order_id": "caf\xe9"}', 422),  # Latin-1, not UTF-8
        (b"[" * 60_000, 422),  # too deep for Python's JSON parser
        ({"order_id": "X", "items": [ITEM] * 20, "pad": "x" * 270_000}, 413),
    ],
    ids=["unknown-field", "no-items", "bad-id", "not-json", "not-utf8", "too-deep", "too-large"],
)
async def test_malformed_bodies_are_refused_with_problem_details(
    api: httpx.AsyncClient, redis: Redis, body: object, status: int
) -> None:
    """Bodies with an unknown field, no items, a bad id, no JSON or too many bytes get a problem+json 4xx."""
    headers = await bearer(redis, "client-a")
    if isinstance(body, bytes):
        response = await api.post(
            "/v1/orders", content=body, headers={**headers, "content-type": "application/json"}
        )
    else:
        response = await api.post("/v1/orders", json=body, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == {422: "INVALID_REQUEST", 413: "PAYLOAD_TOO_LARGE"}[status]
    assert "Traceback" not in response.text


async def test_orders_are_listed_in_pages_with_filters(api: httpx.AsyncClient, redis: Redis) -> None:
    """Five orders, pages of two: every order once, newest first; a status filter narrows it."""
    client = unique("pager")
    headers = await bearer(redis, client)
    created = [await create_order(api, headers) for _ in range(5)]
    for order_id in created:
        await eventually(lambda order_id=order_id: _is(api, order_id, headers, 1))  # type: ignore[misc]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/orders", params=params, headers=headers)).json()
        seen += [o["order_id"] for o in page["orders"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created) and len(seen) == 5
    confirmed = await api.get("/v1/orders", params={"status": 1}, headers=headers)
    assert len(confirmed.json()["orders"]) == 5
    pending = await api.get("/v1/orders", params={"status": 5}, headers=headers)
    assert pending.json()["orders"] == []


async def test_endpoint_created_over_the_api_receives_signed_deliveries(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    """Register through the API (secret shown once), run the relay: the receiver verifies the deliveries."""
    client = unique("hooked")
    headers = await bearer(redis, client)
    receiver = WebhookReceiver()
    await receiver.start()
    relay = build_relay(RelaySettings(**api_settings(settings).model_dump(), relay_group=unique("relay")))
    await relay.start()
    try:
        await until_assigned(relay.broker)
        created = (
            await api.post("/v1/webhook-endpoints", json={"url": receiver.url}, headers=headers)
        ).json()
        listed = (await api.get("/v1/webhook-endpoints", headers=headers)).text
        assert created["secret"] not in listed

        order_id = await create_order(api, headers)

        await receiver.wait_for(lambda: len(receiver.delivered()) >= 2)
        assert [r.body["status"] for r in receiver.delivered() if r.body["order_id"] == order_id] == [5, 1]
        assert all(receiver.verifies(r, created["secret"]) for r in receiver.delivered())
    finally:
        await relay.stop()
        await receiver.stop()


async def test_endpoint_filter_can_be_set_and_cleared(api: httpx.AsyncClient, redis: Redis) -> None:
    """PATCH changes only the fields sent; an explicit null clears the status filter (docs/api.md)."""
    headers = await bearer(redis, unique("patcher"))
    created = await api.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"}, headers=headers)
    path = f"/v1/webhook-endpoints/{created.json()['endpoint_id']}"

    filtered = await api.patch(path, json={"status_filter": [1, 10]}, headers=headers)
    described = await api.patch(path, json={"description": "ops"}, headers=headers)
    cleared = await api.patch(path, json={"status_filter": None}, headers=headers)

    assert filtered.json()["status_filter"] == [1, 10]
    assert (described.json()["status_filter"], described.json()["description"]) == ([1, 10], "ops")
    assert cleared.json()["status_filter"] is None
    stored = (await api.get(path, headers=headers)).json()
    assert stored["status_filter"] is None, "cleared in the store too: every status is delivered"


async def test_endpoint_event_types_can_be_chosen_and_changed(api: httpx.AsyncClient, redis: Redis) -> None:
    """Status events only by default; `event_types` on create and PATCH subscribes to rejections, each type
    once; an empty or unknown list is refused (docs/api.md)."""
    headers = await bearer(redis, unique("subscriber"))
    url = "http://127.0.0.1:9/h"
    default = await api.post("/v1/webhook-endpoints", json={"url": url}, headers=headers)
    both = ["command_rejected", "order_status_changed", "command_rejected"]
    chosen = await api.post("/v1/webhook-endpoints", json={"url": url, "event_types": both}, headers=headers)
    path = f"/v1/webhook-endpoints/{default.json()['endpoint_id']}"

    changed = await api.patch(path, json={"event_types": ["command_rejected"]}, headers=headers)
    described = await api.patch(path, json={"description": "rejections"}, headers=headers)
    empty = await api.patch(path, json={"event_types": []}, headers=headers)
    unknown = await api.patch(path, json={"event_types": ["order_created"]}, headers=headers)

    assert default.json()["event_types"] == ["order_status_changed"]
    assert chosen.json()["event_types"] == ["order_status_changed", "command_rejected"]
    assert changed.json()["event_types"] == described.json()["event_types"] == ["command_rejected"]
    assert empty.status_code == unknown.status_code == 422
    assert (await api.get(path, headers=headers)).json()["event_types"] == ["command_rejected"]


async def test_endpoint_held_back_by_the_breaker_is_shown_paused(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """An endpoint whose circuit breaker is open is shown as PAUSED until `paused_until` (docs/api.md)."""
    headers = await bearer(redis, unique("paused"))
    created = await api.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/h"}, headers=headers)
    endpoint_id = created.json()["endpoint_id"]
    until = datetime.now(UTC) + timedelta(minutes=1)
    # What settle_delivery.lua writes when the breaker opens.
    await redis.hset(webhook_endpoint_key(endpoint_id), "paused_until", int(until.timestamp() * 1000))

    shown = (await api.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=headers)).json()
    [listed] = (await api.get("/v1/webhook-endpoints", headers=headers)).json()

    assert (shown["state"], listed["state"]) == ("PAUSED", "PAUSED")
    assert datetime.fromisoformat(shown["paused_until"]) > datetime.now(UTC)


async def test_chunked_bodies_must_declare_their_length(api: httpx.AsyncClient, redis: Redis) -> None:
    """A body without Content-Length could escape the size limit, so it is refused up front."""
    headers = await bearer(redis, "client-a")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"order_id": "X", '
        yield b'"items": []}'

    response = await api.post(
        "/v1/orders", content=chunks(), headers={**headers, "content-type": "application/json"}
    )

    assert (response.status_code, response.json()["code"]) == (411, "LENGTH_REQUIRED")
