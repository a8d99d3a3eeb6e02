"""Contract v1.1 at the HTTP door: ambiguous JSON, the limits and the identifier rule, on the real API."""

import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from contracts.limits import MAX_IDENTIFIER_LENGTH, MAX_NAME_LENGTH
from service.api.app import build_api
from service.config import Settings
from testkit.api_keys import issue_key
from testkit.factories import SERVICE_DATE
from tests.integration.conftest import api_settings
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service", "simulator")]


def _passengers(count: int, name: str = "Ada") -> list[dict[str, str]]:
    return [{"passenger_id": f"PAX-{n}", "name": name} for n in range(count)]


def _item(passengers: int = 1, **fields: Any) -> dict[str, Any]:
    item = {"resource_id": "RES-OK", "product_type": "FAST_TRACK", "service_date": SERVICE_DATE.isoformat()}
    return {**item, "passengers": _passengers(passengers), **fields}


async def _headers(redis: Redis) -> dict[str, str]:
    issued = await issue_key(redis, "client-a")
    return {"Authorization": f"Bearer {issued.token}", "content-type": "application/json"}


def _body_routes(settings: Settings) -> list[tuple[str, str]]:
    """Every (method, path) of the app whose route reads a body, as the app itself describes its routes."""
    paths = build_api(api_settings(settings)).openapi()["paths"]
    found = [
        (method.upper(), path)
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert len(found) >= 8, found  # commands, webhook endpoint create/patch/rotate/replay: never none
    return found


async def test_a_repeated_key_is_refused_on_every_route_that_takes_a_body(
    api: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    """`{"a": …, "a": …}` is 422 problem details naming the key and never its values, wherever it is sent,
    before any route decides anything."""
    headers = await _headers(redis)
    for method, path in _body_routes(settings):
        url = path.format(order_id="ORD-X", endpoint_id="ep_x")
        body = b'{"description": "value-one", "description": "value-two"}'
        response = await api.request(method, url, content=body, headers=headers)
        assert response.status_code == 422, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "INVALID_REQUEST"
        assert problem["errors"] == [
            {
                "loc": ["body", "description"],
                "msg": "the key appears more than once in its object",
                "type": "duplicate_key",
            }
        ]
        assert "value-one" not in response.text and "value-two" not in response.text


async def test_a_repeated_key_deep_in_a_command_is_located(api: httpx.AsyncClient, redis: Redis) -> None:
    """The location leads to the object that repeats it; a repeated `client_id` is never resolved."""
    headers = await _headers(redis)
    passenger = '{"passenger_id": "P1", "name": "Ada", "name": "Eve"}'
    item = f'{{"resource_id": "R", "product_type": "LOUNGE", "service_date": "{SERVICE_DATE}", "passengers": [{passenger}]}}'  # noqa: E501
    response = await api.post(
        "/v1/orders", content=f'{{"order_id": "ORD-X", "items": [{item}]}}', headers=headers
    )
    assert response.json()["errors"][0]["loc"] == ["body", "items", 0, "passengers", 0, "name"]
    unpaired = await api.post("/v1/orders", content=b'{"order_id": "\\ud800"}', headers=headers)
    assert (unpaired.status_code, unpaired.json()["errors"][0]["type"]) == (422, "string_unicode")


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/v1/orders", {"order_id": "ORD/1", "items": [_item()]}, ["body", "order_id"]),
        (
            "/v1/orders",
            {"order_id": "ORD-1", "items": [_item(order_item_id="A/B")]},
            ["body", "items", 0, "order_item_id"],
        ),
        (
            "/v1/walk-ins",
            {
                "order_id": "W-1",
                "resource_id": "L",
                "product_type": "LOUNGE",
                "credential": "CARD/1",
                "passengers": _passengers(1),
            },
            ["body", "credential"],
        ),
        ("/v1/orders/ORD-X/cancel", {"order_item_ids": ["ORD-X/ITEM-1"]}, ["body", "order_item_ids", 0]),
        ("/v1/orders/ORD-X/redeem", {"service_ids": ["ITEM-1/PAX-1"]}, ["body", "service_ids", 0]),
    ],
    ids=["order_id", "order_item_id", "credential", "order_item_ids", "service_ids"],
)
async def test_a_client_identifier_with_a_slash_is_refused(
    api: httpx.AsyncClient, redis: Redis, path: str, body: dict[str, Any], location: list[object]
) -> None:
    """`/` separates path segments and the parts of reservation ids: no client-chosen id may hold one."""
    response = await api.post(path, json=body, headers=await _headers(redis))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["errors"]] == [location]


@pytest.mark.parametrize(
    ("body", "location", "says"),
    [
        ({"items": [_item(50), _item(50), _item(1)]}, ["body"], "at most 100 services"),
        ({"items": [_item(51)]}, ["body", "items", 0, "passengers"], "at most 50"),
        ({"items": [_item()] * 21}, ["body", "items"], "at most 20"),
        (
            {"items": [{**_item(), "passengers": _passengers(1, "N" * (MAX_NAME_LENGTH + 1))}]},
            ["body", "items", 0, "passengers", 0, "name"],
            "at most 100",
        ),
        ({"items": [_item(order_item_id="I" * 33)]}, ["body", "items", 0, "order_item_id"], "at most 32"),
    ],
    ids=["services-per-order", "passengers-per-item", "items", "name", "order_item_id"],
)
async def test_a_command_just_over_a_limit_is_refused_with_the_field(
    api: httpx.AsyncClient, redis: Redis, body: dict[str, Any], location: list[object], says: str
) -> None:
    """422 INVALID_REQUEST with where and why; the limits spanning items are checked by the contract model."""
    response = await api.post(
        "/v1/orders", json={"order_id": f"ORD-{uuid.uuid4().hex}", **body}, headers=await _headers(redis)
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["loc"], says in error["msg"]) == (location, True)


def _shapes(run: str) -> list[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
    return [
        f"{run}a..b",
        f"{run}.",
        f"{run}:x:y",
        f"{run}-_.:9",
        f"{run}...---:::___",
        f"{run}{alphabet}",
        f"{run}".ljust(MAX_IDENTIFIER_LENGTH, "."),
    ]


async def test_every_identifier_shape_the_contract_allows_reaches_the_order_routes(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """Created over HTTP, each order is found at GET /v1/orders/{id} under exactly its id, and the cancel
    route reaches it too: no allowed id is lost to path parsing (dots, colons, `..`, 128 characters)."""
    headers = await _headers(redis)
    order_ids = _shapes(uuid.uuid4().hex[:8])
    for order_id in order_ids:
        passengers = [{"passenger_id": "P:1.x..y", "name": "Ada"}]
        body = {
            "order_id": order_id,
            "items": [{**_item(order_item_id="I.1:a..b"), "passengers": passengers}],
        }
        assert (await api.post("/v1/orders", json=body, headers=headers)).status_code == 202

    for order_id in order_ids:

        async def found(order_id: str = order_id) -> httpx.Response | None:
            response = await api.get(f"/v1/orders/{order_id}", headers=headers)
            return response if response.status_code == 200 else None

        response = await eventually(found)
        assert response.json()["order_id"] == order_id
        [item] = response.json()["order"]["items"]
        assert item["services"][0]["service_id"] == "I.1:a..b-P:1.x..y"
        cancel = await api.post(f"/v1/orders/{order_id}/cancel", json={}, headers=headers)
        assert cancel.status_code == 202, (order_id, cancel.text)
