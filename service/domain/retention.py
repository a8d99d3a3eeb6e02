"""How long a stored order is kept: the retention policy of order state (docs/operations.md#retention)."""

from datetime import UTC, date, datetime, time, timedelta

from contracts.statuses import OrderStatus
from service.domain.order import Order

FINISHED = (OrderStatus.USED, OrderStatus.CANCELLED, OrderStatus.FAILED)


def expires_at(order: Order, retention: timedelta) -> datetime | None:
    """When the order (its state, applied inputs and outbox) may be forgotten, or None to keep it.

    - Used, Cancelled and Failed orders are kept `retention` after their last change: long enough for late
      replies, staff cancellation of a walk-in and duplicate commands to meet their order rather than none.
    - A Confirmed order is kept until `retention` after the end of its last service date (or after its last
      change, if that is later): a booking months ahead must outlive its own date.
    - A Pending order is kept: its confirmation deadline always moves it on to Confirmed or Failed.
    """
    if order.status in FINISHED:
        return order.updated_at + retention
    if order.status is OrderStatus.CONFIRMED:
        dates = [date.fromisoformat(item.service_date) for item in order.items if item.service_date]
        last_day_end = datetime.combine(max(dates), time.max, UTC) if dates else order.updated_at
        return max(order.updated_at, last_day_end) + retention
    return None
