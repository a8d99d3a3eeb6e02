"""JSON Schema of every contract message, as committed under `contracts/schemas/`."""

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from contracts.commands import OrderCommand
from contracts.events import CommandRejected, DeadLetter, EndpointStateChanged, OrderStatusChanged
from contracts.resources import ResourceReplyMessage, ResourceRequestMessage

SCHEMA_DIR = Path(__file__).parent / "schemas"

# One schema per topic payload, named after the topic it travels on.
TOPIC_PAYLOADS: dict[str, Any] = {
    "orders.commands": OrderCommand,
    "resources.requests": ResourceRequestMessage,
    "resources.replies": ResourceReplyMessage,
    "orders.status-changed": OrderStatusChanged,
    "orders.command-rejected": CommandRejected,
    "orders.dead-letter": DeadLetter,
}


# Webhook payloads that travel on no topic, named after their `type`.
WEBHOOK_PAYLOADS: dict[str, Any] = {"webhooks.endpoint_state_changed": EndpointStateChanged}


def json_schemas() -> dict[str, str]:
    """File name → JSON Schema text for every topic payload and webhook-only payload."""
    out = {}
    for topic, payload in (TOPIC_PAYLOADS | WEBHOOK_PAYLOADS).items():
        schema = TypeAdapter(payload).json_schema(mode="validation")
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{topic}.json", **schema}
        out[f"{topic}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in json_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
