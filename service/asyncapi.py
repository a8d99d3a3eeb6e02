"""AsyncAPI and OpenAPI documents, generated from the service's own apps and committed under contracts/.

The order service's broker comes in from its composition root (`orders contracts export` builds it with
`document_settings()`): only the CLI imports that root.
"""

import json
from pathlib import Path

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from service.config import ApiSettings, Settings

ASYNCAPI_PATH = Path(__file__).resolve().parent.parent / "contracts" / "asyncapi.json"
OPENAPI_PATH = ASYNCAPI_PATH.with_name("openapi.json")


def document_settings() -> Settings:
    """The settings the committed documents describe: the default topic names, Compose's hosts."""
    return Settings(kafka_bootstrap_servers="kafka:9092", redis_url="redis://redis:6379/0")


def asyncapi_document(broker: KafkaBroker) -> str:
    """The document of the order service's `broker` (built from `document_settings()`), as JSON."""
    spec = AsyncAPI(
        broker,
        title="Order service",
        version="1.0.0",
        description=(
            "Contract v1. JSON messages in UTF-8, keyed by `order_id`; every message has a `type` field. "
            "See docs/contract.md for keys, ordering, idempotency and the status codes. The channels are "
            "those of the `shared` topic layout; in the `per_client` layout (docs/contract.md#tenancy) each "
            "client has its own `orders.commands.<client_id>`, `orders.status-changed.<client_id>` and "
            "`orders.command-rejected.<client_id>`, carrying the same messages."
        ),
        schema_version="3.0.0",
    )
    return json.dumps(spec.to_specification().to_jsonable(), indent=2, sort_keys=True) + "\n"


def write_asyncapi(broker: KafkaBroker, path: Path = ASYNCAPI_PATH) -> Path:
    """Write the document of `broker` to `path`."""
    path.write_text(asyncapi_document(broker), encoding="utf-8")
    return path


def openapi_document() -> str:
    """The HTTP API's OpenAPI document, as pretty-printed JSON."""
    from service.api.app import build_api  # noqa: PLC0415 - FastAPI is needed only for this document

    api = build_api(ApiSettings(kafka_bootstrap_servers="kafka:9092", redis_url="redis://redis:6379/0"))
    return json.dumps(api.openapi(), indent=2, sort_keys=True) + "\n"


def write_openapi(path: Path = OPENAPI_PATH) -> Path:
    """Write the OpenAPI document to `path`."""
    path.write_text(openapi_document(), encoding="utf-8")
    return path
