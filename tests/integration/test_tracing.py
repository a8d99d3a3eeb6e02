"""Tracing end to end: the API, the order service, the simulator and the relay run as real processes
exporting to a loopback OTLP/HTTP receiver; one prebooking over HTTP is one trace, down to the webhook
request's `traceparent`."""

import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from redis.asyncio import Redis

from bench.harness import settings_environment
from service import tracing
from service.config import RelaySettings
from service.devstack import Endpoints, free_port
from service.kafka import ensure_topics, service_topics
from service.store.webhook_endpoints import EndpointStore
from testkit.api_keys import issue_key
from testkit.factories import unique
from testkit.webhook_receiver import Received, WebhookReceiver
from tests.integration.conftest import isolated_settings
from tests.system.processes import ORDERS
from tests.waiting import eventually

PROCESSES = {
    "orders-api": "api",
    "orders-service": "service",
    "orders-resource-sim": "resource-sim",
    "orders-relay": "relay",
}
"""Each process by its default `service.name`, and its `orders` subcommand."""


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int


class OtlpReceiver:
    """An OTLP/HTTP (protobuf) traces endpoint on loopback, keeping every span it is sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[ExportedSpan] = []
        self.content_types: set[str] = set()
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _export(self, request: web.Request) -> web.Response:
        self.content_types.add(request.content_type)
        exported = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in exported.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.spans += [
                    ExportedSpan(
                        attributes.get("service.name", ""),
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.name,
                        span.kind,
                    )
                    for span in scope_spans.spans
                ]
        body = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    def of_trace(self, trace_id: str) -> list[ExportedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]


@pytest.fixture
async def otlp() -> AsyncIterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def settings(stack: Endpoints) -> RelaySettings:
    """One run's own topics and groups, loopback webhooks allowed, a relay that polls often."""
    base = isolated_settings(stack, f"tr{uuid.uuid4().hex[:8]}")
    settings = RelaySettings(
        **base.model_dump()
        | {
            "relay_require_https": False,
            "relay_allowed_networks": ["127.0.0.0/8"],
            "relay_poll_seconds": 0.05,
            "kafka_metadata_max_age_ms": 1000,
        }
    )
    await ensure_topics(
        settings.kafka_bootstrap_servers, service_topics(settings), settings.topic_partitions, 1
    )
    return settings


@pytest.fixture
def processes(
    settings: RelaySettings, otlp: OtlpReceiver, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Path]]]:
    """The four processes, exporting spans to `otlp` within a tenth of a second; the API's base URL and
    each process's log file."""
    api_port = free_port()
    env = settings_environment(
        settings,
        ORDERS_API_PORT=str(api_port),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_EXPORTER",
    ):
        env.pop(name, None)
    logs = {name: tmp_path / f"{name}.log" for name in PROCESSES}
    started: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in PROCESSES.items():
            with logs[name].open("wb") as log:
                started.append(
                    subprocess.Popen([*ORDERS, command], env=env, stdout=log, stderr=subprocess.STDOUT)
                )
        yield f"http://127.0.0.1:{api_port}", logs
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def until_ready(api_url: str) -> None:
    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(base_url=api_url) as client:
                return (await client.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, timeout=30)


@pytest.mark.timeout(120)
async def test_one_trace_from_the_http_call_to_the_webhook_request(
    settings: RelaySettings,
    otlp: OtlpReceiver,
    webhook: WebhookReceiver,
    processes: tuple[str, dict[str, Path]],
) -> None:
    """A prebooking posted to the API: the webhook request of its confirmation carries a `traceparent` whose
    trace holds spans of all four processes, each named by its `service.name`, chained hop by hop: the
    request's parent span is the relay's attempt, and every consumer span continues a producer span."""
    api_url, logs = processes
    client_id = unique("trace")
    async with Redis.from_url(settings.redis_url.get_secret_value()) as redis:
        await EndpointStore(redis).create(client_id, webhook.url, datetime.now(UTC))
        key = await issue_key(redis, client_id)
    await until_ready(api_url)
    order_id = unique("ORD")
    item = {
        "resource_id": "RES-OK",
        "product_type": "FAST_TRACK",
        "service_date": "2026-12-24",
        "passengers": [{"passenger_id": "PAX-1", "name": "Ada"}],
    }
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            "/v1/orders",
            json={"order_id": order_id, "items": [item]},
            headers={"Authorization": f"Bearer {key.token}"},
        )
    assert response.status_code == 202, response.text

    def confirmed() -> list[Received]:
        return [r for r in webhook.delivered() if r.body.get("status_name") == "Confirmed"]

    try:
        await webhook.wait_for(confirmed, timeout=60)
    except TimeoutError:
        pytest.fail("no confirmation delivered:\n" + "\n".join(p.read_text()[-2000:] for p in logs.values()))
    [delivery] = confirmed()
    version, trace_id, parent_id, flags = delivery.headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1 and int(trace_id, 16) != 0  # sampled

    def whole_trace() -> list[ExportedSpan] | None:
        spans = otlp.of_trace(trace_id)
        services = {s.service for s in spans}
        ids = {s.span_id for s in spans}
        # Complete: every process has spans in it, the request's parent and every span's parent are in.
        complete = parent_id in ids and all(not s.parent_id or s.parent_id in ids for s in spans)
        return spans if services >= set(PROCESSES) and complete else None

    try:
        spans = await eventually(whole_trace, timeout=30)
    except TimeoutError:
        seen = sorted({(s.service, s.name) for s in otlp.of_trace(trace_id)})
        pytest.fail(f"the webhook's trace {trace_id} holds only {seen}")
    by_id = {s.span_id: s for s in spans}
    [attempt] = [s for s in spans if s.span_id == parent_id]
    assert (attempt.service, attempt.name, attempt.kind) == (
        "orders-relay",
        "POST",
        SpanMessage.SPAN_KIND_CLIENT,
    )
    # The API's request span is the root; every other span descends from it.
    [root] = [s for s in spans if not s.parent_id]
    assert root.service == "orders-api" and root.kind == SpanMessage.SPAN_KIND_SERVER
    for span in spans:
        ancestor = span
        while ancestor.parent_id:
            ancestor = by_id[ancestor.parent_id]
        assert ancestor == root, f"{span} is not under the API's request span"
    # Each hop: a consumer span of the topic, whose parent is a producer span of the process before it.
    hops = [
        ("orders-service", settings.topic_commands, "orders-api"),
        ("orders-resource-sim", settings.topic_resource_requests, "orders-service"),
        ("orders-service", settings.topic_resource_replies, "orders-resource-sim"),
        ("orders-relay", settings.topic_status_changed, "orders-service"),
    ]
    for service, topic, upstream in hops:
        consumed = [s for s in spans if s.service == service and s.name == f"{topic} process"]
        assert consumed, f"no {topic} process span of {service}"
        parents = {by_id[s.parent_id].service for s in consumed}
        kinds = {by_id[s.parent_id].kind for s in consumed}
        assert parents == {upstream} and kinds == {SpanMessage.SPAN_KIND_PRODUCER}
    assert otlp.content_types == {"application/x-protobuf"}


def test_tracing_is_off_unless_an_otlp_endpoint_is_set() -> None:
    """No endpoint, or the SDK or the traces exporter switched off: `configure` sets nothing up."""
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert not tracing.requested({})
    assert tracing.requested(endpoint)
    assert tracing.requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert not tracing.requested(endpoint | {"OTEL_SDK_DISABLED": "true"})
    assert not tracing.requested(endpoint | {"OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.configure("orders-test", {}) and not tracing.ENABLED
