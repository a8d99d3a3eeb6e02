"""Contract v1 of the order service: topics, messages and status codes.

Depends on pydantic only, so client systems can install and use it alone.
"""

from contracts import topics
from contracts.base import Passenger
from contracts.commands import (
    CancelOrder,
    CreatePrebooking,
    OrderCommand,
    PrebookingItem,
    RecordWalkIn,
    RedeemOrder,
    order_command_adapter,
)
from contracts.events import (
    CommandRejected,
    DeadLetter,
    FieldError,
    OrderItemView,
    OrderStatusChanged,
    OrderView,
    ServiceView,
)
from contracts.resources import (
    ReleaseRequest,
    ReservationConfirmed,
    ReservationFailed,
    ReserveRequest,
    ResourceReplyMessage,
    ResourceRequestMessage,
    resource_reply_adapter,
    resource_request_adapter,
)
from contracts.statuses import (
    DeliveryStatus,
    OneOrderStatus,
    OrderItemStatus,
    OrderStatus,
    OrderType,
    ProductType,
    RejectionCode,
    ServiceStatus,
)

__all__ = [
    "CancelOrder",
    "CommandRejected",
    "CreatePrebooking",
    "DeadLetter",
    "DeliveryStatus",
    "FieldError",
    "OneOrderStatus",
    "OrderCommand",
    "OrderItemStatus",
    "OrderItemView",
    "OrderStatus",
    "OrderStatusChanged",
    "OrderType",
    "OrderView",
    "Passenger",
    "PrebookingItem",
    "ProductType",
    "RecordWalkIn",
    "RedeemOrder",
    "RejectionCode",
    "ReleaseRequest",
    "ReservationConfirmed",
    "ReservationFailed",
    "ReserveRequest",
    "ResourceReplyMessage",
    "ResourceRequestMessage",
    "ServiceStatus",
    "ServiceView",
    "order_command_adapter",
    "resource_reply_adapter",
    "resource_request_adapter",
    "topics",
]
