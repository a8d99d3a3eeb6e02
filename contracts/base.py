"""Shared building blocks of contract v1 messages."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/\-]*$"),
]
"""Identifiers: 1-128 letters, digits and `. _ : / -`, starting with a letter or digit."""


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


class Passenger(Message):
    """One traveller; every ONE Order service belongs to exactly one passenger."""

    passenger_id: Identifier = Field(description="The client's id of the passenger.", examples=["PAX-1"])
    name: str = Field(
        min_length=1, max_length=200, description="Passenger name as printed.", examples=["Ada Lovelace"]
    )
