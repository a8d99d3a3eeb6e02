"""The committed contract files match the code, and the models refuse what the contract forbids."""

import json

import pytest
from pydantic import ValidationError

from contracts.commands import CreatePrebooking, order_command_adapter
from contracts.export import SCHEMA_DIR, json_schemas
from service.app import build_service
from service.asyncapi import (
    ASYNCAPI_PATH,
    OPENAPI_PATH,
    asyncapi_document,
    document_settings,
    openapi_document,
)


def _service_asyncapi() -> str:
    return asyncapi_document(build_service(document_settings()).broker)


def test_committed_json_schemas_are_up_to_date() -> None:
    """contracts/schemas/ is what `make contracts` generates from the models today."""
    generated = json_schemas()
    committed = {path.name: path.read_text(encoding="utf-8") for path in SCHEMA_DIR.glob("*.json")}
    assert committed == generated, "run `make contracts` and commit the result"


def test_committed_asyncapi_document_is_up_to_date() -> None:
    """contracts/asyncapi.json is what FastStream generates from the service app today."""
    assert ASYNCAPI_PATH.read_text(encoding="utf-8") == _service_asyncapi(), "run `make contracts`"


def test_committed_openapi_document_is_up_to_date() -> None:
    """contracts/openapi.json is what FastAPI generates from the HTTP API today."""
    assert OPENAPI_PATH.read_text(encoding="utf-8") == openapi_document(), "run `make contracts`"


def test_asyncapi_documents_every_topic_with_its_payload() -> None:
    """Each of the six topics appears with the contract's message schema, not a placeholder."""
    document = json.loads(_service_asyncapi())
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {
        "orders.commands",
        "resources.requests",
        "resources.replies",
        "orders.status-changed",
        "orders.command-rejected",
        "orders.dead-letter",
    }
    schemas = document["components"]["schemas"]
    assert {"CreatePrebooking", "RecordWalkIn", "CancelOrder", "RedeemOrder", "OrderStatusChanged"} <= set(
        schemas
    )


def _command(**overrides: object) -> dict[str, object]:
    command: dict[str, object] = {
        "type": "create_prebooking",
        "command_id": "cmd-1",
        "client_id": "acme",
        "order_id": "ORD-1",
        "items": [
            {
                "resource_id": "LHR-FT",
                "product_type": "FAST_TRACK",
                "service_date": "2026-12-24",
                "passengers": [{"passenger_id": "P1", "name": "Ada"}],
            }
        ],
    }
    return {**command, **overrides}


def test_a_valid_command_parses_to_its_type() -> None:
    """The `type` field selects the model."""
    assert isinstance(order_command_adapter.validate_json(json.dumps(_command())), CreatePrebooking)


@pytest.mark.parametrize(
    "overrides",
    [
        {"order_id": "ORD{1}"},  # braces would break the Redis hash tag
        {"order_id": "ORD\n1"},  # newlines would break the outbox entry format
        {"order_id": ""},
        {"items": []},
        {"surprise": True},
        {"type": "create_walk_in"},
    ],
    ids=["braces", "newline", "empty-id", "no-items", "unknown-field", "unknown-type"],
)
def test_commands_outside_the_contract_are_refused(overrides: dict[str, object]) -> None:
    """Identifiers, required lists, unknown fields and unknown types are all checked."""
    with pytest.raises(ValidationError):
        order_command_adapter.validate_json(json.dumps(_command(**overrides)))
