"""Shared building blocks of contract v1 messages."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.limits import (
    MAX_CLIENT_ID_LENGTH,
    MAX_IDENTIFIER_LENGTH,
    MAX_NAME_LENGTH,
    MAX_ORDER_ITEM_ID_LENGTH,
    MAX_PASSENGER_ID_LENGTH,
)

Identifier = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_IDENTIFIER_LENGTH, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/\-]*$"
    ),
]
"""Identifiers the operators and the service choose (`reply_id`, `resource_id`): 1-128 letters, digits and
`. _ : / -`, starting with a letter or digit."""

_CLIENT_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"

ClientIdentifier = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_IDENTIFIER_LENGTH, pattern=_CLIENT_IDENTIFIER)
]
"""Identifiers a client chooses (`command_id`, `order_id`, `credential`, and the ids that name
services and items): like `Identifier` without `/`, which separates the parts of reservation ids and of
API paths, so that every order id is one path segment of `GET /v1/orders/{order_id}`."""

CLIENT_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9-]{{0,{MAX_CLIENT_ID_LENGTH - 1}}}$"
"""What a `client_id` is: 1-64 letters, digits and `-`, starting with a letter or digit."""

ClientId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_CLIENT_ID_LENGTH, pattern=CLIENT_ID_PATTERN)
]
"""A `client_id`: 1-64 letters, digits and `-`, starting with a letter or digit. Narrower than
`ClientIdentifier` because it also names the client's own Kafka topics (`orders.commands.<client_id>`) and
is one part of composite keys: no `.`, `_`, `:` or `/`, which separate the parts of those names."""

OrderItemId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ORDER_ITEM_ID_LENGTH, pattern=_CLIENT_IDENTIFIER)
]
"""An `order_item_id` as an order is created with it: a client identifier of at most 32 characters."""

PassengerId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_PASSENGER_ID_LENGTH, pattern=_CLIENT_IDENTIFIER)
]
"""A `passenger_id`: a client identifier of at most 64 characters."""

PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""Text without control characters (C0, DEL, C1): printed as it is, and never a `\\u0000` escape in JSON."""
PRINTABLE_OR_LINE_BREAKS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
"""Free text: printable, and tab, line feed and carriage return."""


def _type_is_required(schema: dict[str, Any]) -> None:
    # `type` has a default so that code can build messages without repeating it, but on the wire it is
    # required (it selects the model), and the published schemas must say so.
    if "type" in schema.get("properties", {}):
        schema["required"] = ["type", *[name for name in schema.get("required", []) if name != "type"]]


class Message(BaseModel):
    """Every contract message: JSON, snake_case, unknown fields refused, immutable once built."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, use_enum_values=False, json_schema_extra=_type_is_required
    )


def _unknown_fields_allowed(schema: dict[str, Any]) -> None:
    _type_is_required(schema)
    schema["additionalProperties"] = True


class TolerantMessage(Message):
    """A message its readers take as far as they know it: fields it does not name are ignored when parsed,
    and its JSON Schema allows them, so that a newer producer may add optional fields."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_unknown_fields_allowed)


class Passenger(Message):
    """One traveller; every ONE Order service belongs to exactly one passenger."""

    passenger_id: PassengerId = Field(description="The client's id of the passenger.", examples=["PAX-1"])
    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=PRINTABLE,
        description="Passenger name as printed; no control characters.",
        examples=["Ada Lovelace"],
    )
