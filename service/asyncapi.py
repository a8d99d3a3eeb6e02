"""AsyncAPI and OpenAPI documents, generated from the service's own apps and committed under contracts/."""

import json
from pathlib import Path

from faststream.specification import AsyncAPI

from service.app import build_service
from service.config import ApiSettings, Settings

ASYNCAPI_PATH = Path(__file__).resolve().parent.parent / "contracts" / "asyncapi.json"
OPENAPI_PATH = ASYNCAPI_PATH.with_name("openapi.json")


def asyncapi_document() -> str:
    """The document for the default topic names, as pretty-printed JSON."""
    service = build_service(Settings(kafka_bootstrap_servers="kafka:9092", redis_url="redis://redis:6379/0"))
    spec = AsyncAPI(
        service.broker,
        title="Order service",
        version="1.0.0",
        description=(
            "Contract v1. JSON messages in UTF-8, keyed by `order_id`; every message has a `type` field. "
            "See docs/contract.md for keys, ordering, idempotency and the status codes."
        ),
        schema_version="3.0.0",
    )
    return json.dumps(spec.to_specification().to_jsonable(), indent=2, sort_keys=True) + "\n"


def write_asyncapi(path: Path = ASYNCAPI_PATH) -> Path:
    """Write the document to `path`."""
    path.write_text(asyncapi_document(), encoding="utf-8")
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
