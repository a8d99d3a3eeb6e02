"""The API's routes: Order Details (authenticated, tenant-scoped), health, readiness and metrics."""

import base64
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

import contracts
from contracts.limits import EVENTS_PER_PAGE, ORDERS_PER_PAGE
from contracts.statuses import OrderStatus, OrderType
from service.api.dependencies import BrokerDep, ClientIdDep, OrdersDep, RedisDep
from service.api.models import EventPage, Health, OrderDetails, OrderPage
from service.api.problems import AUTHENTICATED
from service.clock import to_epoch_ms
from service.domain.order import Order
from service.domain.status_event import order_view

ASYNCAPI = Path(contracts.__file__).with_name("asyncapi.json")

orders = APIRouter(prefix="/v1/orders", tags=["orders"], responses=AUTHENTICATED)


@orders.get("", response_model=OrderPage)
async def list_orders(
    client_id: ClientIdDep,
    store: OrdersDep,
    status: OrderStatus | None = None,
    order_type: OrderType | None = None,
    created_from: datetime | None = None,
    created_until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=ORDERS_PER_PAGE)] = 50,
    cursor: str | None = None,
) -> OrderPage:
    """The caller's orders, newest first, filtered; follow `next_cursor` for the next page."""
    before = _decode_cursor(cursor) if cursor else None
    since = to_epoch_ms(created_from) if created_from else None
    until = to_epoch_ms(created_until) if created_until else None
    found: list[OrderDetails] = []
    position = before
    while True:
        batch = await store.page(client_id, position, since, until, limit)
        for created_ms, order in batch:
            position = (created_ms, order.order_id)
            if (status is None or order.status is status) and (
                order_type is None or order.order_type is order_type
            ):
                found.append(details(order))
                if len(found) == limit:
                    return OrderPage(orders=found, next_cursor=_encode_cursor(position))
        if len(batch) < limit:
            return OrderPage(orders=found, next_cursor=None)


def _encode_cursor(position: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(f"{position[0]}:{position[1]}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        created_ms, order_id = base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)
        return int(created_ms), order_id
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "malformed cursor") from None


def details(order: Order) -> OrderDetails:
    """The API's view of a stored order."""
    return OrderDetails(
        order_id=order.order_id,
        order_type=order.order_type,
        status=order.status,
        status_name=order.status.label,
        reason=order.reason,
        sequence=order.sequence,
        created_at=order.created_at,
        updated_at=order.updated_at,
        order=order_view(order),
    )


@orders.get(
    "/{order_id}",
    response_model=OrderDetails,
    responses={304: {"description": "Not modified since the ETag given in If-None-Match."}},
)
async def get_order(
    order_id: str,
    client_id: ClientIdDep,
    store: OrdersDep,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> OrderDetails | Response:
    """The order's status and ONE Order view; another client's order is answered like a missing one."""
    # Read under the caller's own key: another client's order under this id is never read, let alone
    # parsed, so its answer is a missing order's, in the same time.
    order = await store.get(client_id, order_id)
    if order is None:
        raise HTTPException(404, "no such order")
    etag = f'"{order.sequence}"'
    if if_none_match is not None and etag in [tag.strip() for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return details(order)


@orders.get("/{order_id}/events", response_model=EventPage)
async def order_history(
    order_id: str,
    client_id: ClientIdDep,
    store: OrdersDep,
    limit: Annotated[int, Query(ge=1, le=EVENTS_PER_PAGE)] = EVENTS_PER_PAGE,
    cursor: Annotated[str | None, Query(pattern="^[0-9]{1,6}$")] = None,
) -> Response:
    """The order's status events in sequence order, the same payloads `orders.status-changed` carried,
    kept as long as the order; follow `next_cursor` for the next page. Another client's order is answered
    like a missing one."""
    start = int(cursor) if cursor else 0
    exists, events = await store.history(client_id, order_id, start=start, count=limit)
    if not exists:
        raise HTTPException(404, "no such order")
    next_cursor = f'"{start + limit}"' if len(events) == limit else "null"
    # The events as stored, not parsed and serialised again: byte for byte what subscribers received.
    body = b'{"events":[' + b",".join(events) + b'],"next_cursor":' + next_cursor.encode() + b"}"
    return Response(body, media_type="application/json")


operations = APIRouter(tags=["operations"])


@operations.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@operations.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(redis: RedisDep, broker: BrokerDep, response: Response) -> Health:
    """Redis and Kafka are reachable."""
    checks = {"redis": "ok", "kafka": "ok"}
    try:
        await redis.ping()
    except Exception as error:
        checks["redis"] = type(error).__name__
    if not await broker.ping(timeout=2.0):
        checks["kafka"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ready else 503
    return Health(status="ok" if ready else "unavailable", checks=checks)


@operations.get("/asyncapi.json", response_class=Response)
async def asyncapi() -> Response:
    """The AsyncAPI document of the Kafka contract (the OpenAPI one is at /openapi.json)."""
    return Response(ASYNCAPI.read_bytes(), media_type="application/json")


@operations.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
