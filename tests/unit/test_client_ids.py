"""Every order id the contract allows is one path segment the API routes reach under exactly that id."""

import asyncio
import functools
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from contracts.base import ClientIdentifier
from contracts.commands import Command
from contracts.statuses import OrderStatus, OrderType
from service.api.app import build_api
from service.api.dependencies import calling_client, command_publisher, order_store
from service.config import ApiSettings
from service.domain.order import Order

client_identifier: TypeAdapter[str] = TypeAdapter(ClientIdentifier)
ANY_CLIENT_IDENTIFIER = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}", fullmatch=True)


class _Orders:
    """Answers every lookup with an order of the id asked for, and remembers the ids asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get(self, client_id: str, order_id: str) -> Order:
        self.asked.append(order_id)
        now = datetime(2026, 11, 23, tzinfo=UTC)
        return Order(
            order_id=order_id,
            client_id=client_id,
            order_type=OrderType.PREBOOKING,
            status=OrderStatus.PENDING,
            sequence=1,
            created_at=now,
            updated_at=now,
            items=[],
        )


class _Publisher:
    def __init__(self) -> None:
        self.published: list[Command] = []

    async def publish(self, command: Command) -> None:
        self.published.append(command)


@functools.cache
def _app() -> FastAPI:
    return build_api(ApiSettings())


async def _through_the_api(order_id: str) -> tuple[list[str], list[str], list[int]]:
    app = _app()
    orders, publisher = _Orders(), _Publisher()
    app.dependency_overrides[calling_client] = lambda: "client-a"
    app.dependency_overrides[order_store] = lambda: orders
    app.dependency_overrides[command_publisher] = lambda: publisher
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as api:
        got = await api.get(f"/v1/orders/{order_id}")
        cancelled = await api.post(f"/v1/orders/{order_id}/cancel", json={})
    statuses = [got.status_code, cancelled.status_code]
    return orders.asked, [got.json()["order_id"], *(c.order_id for c in publisher.published)], statuses


@settings(max_examples=150, deadline=None)
@given(ANY_CLIENT_IDENTIFIER)
@example("a..b")
@example("a.")
@example("x:y")
@example("A-_.:9")
@example("9")
@example("ORD-2026-000123")
def test_every_allowed_order_id_reaches_get_and_cancel_unchanged(order_id: str) -> None:
    """httpx builds the URL, Starlette routes it, FastAPI hands the id on: the route sees exactly it."""
    client_identifier.validate_python(order_id)
    asked, answered, statuses = asyncio.run(_through_the_api(order_id))
    assert statuses == [200, 202]
    assert asked == [order_id, order_id]
    assert answered == [order_id, order_id]


@pytest.mark.parametrize(
    "refused", ["a/b", "ORD/1", "/a", "a/", ".a", "-a", "a b", "a%2Fb", "a?b", "a#b", ""]
)
def test_ids_that_would_not_be_one_path_segment_are_not_identifiers(refused: str) -> None:
    """`/` above all (it separates path segments and the parts of reservation ids), and the rest of what a
    URL would read otherwise."""
    with pytest.raises(ValidationError):
        client_identifier.validate_python(refused)
