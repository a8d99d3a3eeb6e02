"""Read models of the HTTP API (the write side is the Kafka command contract)."""

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.events import OrderStatusChanged, OrderView
from contracts.statuses import OrderStatus, OrderType


class OrderDetails(BaseModel):
    """One order as its client sees it: the operator status first, the ONE Order view behind it."""

    order_id: str = Field(examples=["ORD-2026-000123"])
    order_type: OrderType
    status: OrderStatus = Field(description="The operator status code: 5, 1, 2, 3 or 10.")
    status_name: str = Field(examples=["Confirmed"])
    reason: str | None = Field(description="Why the last change happened, when not the happy path.")
    sequence: int = Field(description="The `sequence` of the latest status event; also the ETag.")
    created_at: datetime
    updated_at: datetime
    order: OrderView = Field(description="The ONE Order view under the retrieve rule.")


class Health(BaseModel):
    """Liveness or readiness."""

    status: str = Field(examples=["ok"])
    checks: dict[str, str] = Field(default_factory=dict, examples=[{"redis": "ok", "kafka": "ok"}])


class OrderPage(BaseModel):
    """One page of a client's orders."""

    orders: list[OrderDetails]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class EventPage(BaseModel):
    """One page of an order's history: its status events in sequence, as they were published."""

    events: list[OrderStatusChanged]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
