"""Commands over HTTP: the Kafka command contract, validated here, published to `orders.commands`, 202."""

import uuid
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Header, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from contracts.base import PRINTABLE_OR_LINE_BREAKS, ClientIdentifier, Identifier, OrderItemId, Passenger
from contracts.commands import (
    CancelOrder,
    ChangeOrder,
    Command,
    CreatePrebooking,
    LiftSuspension,
    OrderCommand,
    PrebookingItem,
    RecordWalkIn,
    RedeemOrder,
    SuspendServices,
)
from contracts.limits import (
    MAX_ITEM_IDS_PER_COMMAND,
    MAX_ITEMS_PER_ORDER,
    MAX_PASSENGERS_PER_ITEM,
    MAX_REASON_LENGTH,
    MAX_SERVICE_IDS_PER_COMMAND,
)
from contracts.statuses import ProductType
from service.api.dependencies import ClientIdDep, CommandPublisher, CommandsDep, OrdersDep
from service.api.problems import AUTHENTICATED
from service.store.orders import OrderStore

commands = APIRouter(prefix="/v1", tags=["commands"], responses=AUTHENTICATED)

IdempotencyKey = Annotated[
    ClientIdentifier | None,
    Header(
        description="Becomes the command's `command_id` (a client identifier: no `/`): send the same key "
        "again and nothing happens twice."
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreatePrebookingBody(_Body):
    """`create_prebooking` without the fields the API fills in (`client_id`, `command_id`, `type`)."""

    order_id: ClientIdentifier
    items: list[PrebookingItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_ORDER)


class RecordWalkInBody(_Body):
    """`record_walk_in` without `client_id`, `command_id`, `type`."""

    order_id: ClientIdentifier
    resource_id: Identifier
    product_type: ProductType
    credential: ClientIdentifier
    passengers: list[Passenger] = Field(min_length=1, max_length=MAX_PASSENGERS_PER_ITEM)


class CancelBody(_Body):
    """`cancel_order` without `client_id`, `command_id`, `order_id`, `type`."""

    initiated_by: Literal["CLIENT", "RESOURCE_STAFF"] = "CLIENT"
    order_item_ids: list[ClientIdentifier] | None = Field(
        default=None, min_length=1, max_length=MAX_ITEM_IDS_PER_COMMAND
    )
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH, pattern=PRINTABLE_OR_LINE_BREAKS)


class RedeemBody(_Body):
    """`redeem_order` without `client_id`, `command_id`, `order_id`, `type`."""

    service_ids: list[ClientIdentifier] | None = Field(
        default=None, min_length=1, max_length=MAX_SERVICE_IDS_PER_COMMAND
    )


class SuspendBody(_Body):
    """`suspend_services` without `client_id`, `command_id`, `order_id`, `type`."""

    initiated_by: Literal["OPERATOR", "RESOURCE_STAFF"] = "OPERATOR"
    service_ids: list[ClientIdentifier] | None = Field(
        default=None, min_length=1, max_length=MAX_SERVICE_IDS_PER_COMMAND
    )
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH, pattern=PRINTABLE_OR_LINE_BREAKS)


class LiftSuspensionBody(_Body):
    """`lift_suspension` without `client_id`, `command_id`, `order_id`, `type`."""

    resolution: Literal["REVERT", "REMOVE"]
    service_ids: list[ClientIdentifier] | None = Field(
        default=None, min_length=1, max_length=MAX_SERVICE_IDS_PER_COMMAND
    )
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH, pattern=PRINTABLE_OR_LINE_BREAKS)


class ChangeBody(_Body):
    """`change_order` without `client_id`, `command_id`, `order_id`, `type`."""

    order_item_id: ClientIdentifier
    service_date: date | None = None
    resource_id: Identifier | None = None
    new_order_item_id: OrderItemId | None = None


class Accepted(BaseModel):
    """The command was published; follow it at `GET /v1/commands/{command_id}`, and the order by webhook,
    Kafka or `GET /v1/orders/{order_id}`."""

    order_id: str
    command_id: str


async def _publish(publisher: CommandPublisher, command: OrderCommand) -> Accepted:
    await publisher.publish(command)
    return Accepted(order_id=command.order_id, command_id=command.command_id)


C = TypeVar("C", bound=Command)


def _build(model: type[C], **fields: Any) -> C:
    # The contract's model checks what the body's cannot see alone (the limits that span items): its errors
    # are answered like the body's own, located in the body, without the input values.
    try:
        return model(**fields)
    except ValidationError as error:
        errors = [
            {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None


def _command_id(key: str | None) -> str:
    return key or f"api-{uuid.uuid4()}"


async def _own_order(store: OrderStore, client_id: str, order_id: str) -> None:
    # The key names the client: another client's order under this id is never read, only a missing one.
    if await store.get(client_id, order_id) is None:
        raise HTTPException(404, "no such order")


@commands.post("/orders", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def create_prebooking(
    body: CreatePrebookingBody,
    client_id: ClientIdDep,
    publisher: CommandsDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Create a prebooking (it starts Pending)."""
    command = _build(
        CreatePrebooking, command_id=_command_id(idempotency_key), client_id=client_id, **dict(body)
    )
    return await _publish(publisher, command)


@commands.post("/walk-ins", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def record_walk_in(
    body: RecordWalkInBody,
    client_id: ClientIdDep,
    publisher: CommandsDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Record a walk-in usage (it is created Used)."""
    command = _build(RecordWalkIn, command_id=_command_id(idempotency_key), client_id=client_id, **dict(body))
    return await _publish(publisher, command)


@commands.post("/orders/{order_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def cancel_order(
    order_id: str,
    body: CancelBody,
    client_id: ClientIdDep,
    store: OrdersDep,
    publisher: CommandsDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Cancel the order, or some of its items."""
    await _own_order(store, client_id, order_id)
    fields = dict(body, command_id=_command_id(idempotency_key), client_id=client_id, order_id=order_id)
    return await _publish(publisher, _build(CancelOrder, **fields))


@commands.post("/orders/{order_id}/redeem", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def redeem_order(
    order_id: str,
    body: RedeemBody,
    client_id: ClientIdDep,
    store: OrdersDep,
    publisher: CommandsDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Redeem the order, or some of its services."""
    await _own_order(store, client_id, order_id)
    fields = dict(body, command_id=_command_id(idempotency_key), client_id=client_id, order_id=order_id)
    return await _publish(publisher, _build(RedeemOrder, **fields))


@commands.post("/orders/{order_id}/suspend", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def suspend_services(
    order_id: str,
    body: SuspendBody,
    client_id: ClientIdDep,
    store: OrdersDep,
    publisher: CommandsDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Suspend the delivery of the order's services, or some of them (fraud review): SUSPENDED until the
    suspension is lifted; meanwhile they can be neither redeemed nor cancelled."""
    await _own_order(store, client_id, order_id)
    fields = dict(body, command_id=_command_id(idempotency_key), client_id=client_id, order_id=order_id)
    return await _publish(publisher, _build(SuspendServices, **fields))


@commands.post(
    "/orders/{order_id}/lift-suspension", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted
)
async def lift_suspension(
    order_id: str,
    body: LiftSuspensionBody,
    client_id: ClientIdDep,
    store: OrdersDep,
    publisher: CommandsDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Lift the suspension of the order's suspended services, or some of them: `REVERT` gives each the
    status it had before, `REMOVE` removes their value (no refund)."""
    await _own_order(store, client_id, order_id)
    fields = dict(body, command_id=_command_id(idempotency_key), client_id=client_id, order_id=order_id)
    return await _publish(publisher, _build(LiftSuspension, **fields))


@commands.post("/orders/{order_id}/change", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def change_order(
    order_id: str,
    body: ChangeBody,
    client_id: ClientIdDep,
    store: OrdersDep,
    publisher: CommandsDep,
    idempotency_key: IdempotencyKey = None,
) -> Accepted:
    """Move one item to another service date or resource (a reschedule). The order keeps the item until the
    new one's resource confirms it; then its services move, with their ids, to the new item. If the resource
    refuses or does not answer in time, the order stays as it was."""
    await _own_order(store, client_id, order_id)
    fields = dict(body, command_id=_command_id(idempotency_key), client_id=client_id, order_id=order_id)
    return await _publish(publisher, _build(ChangeOrder, **fields))
