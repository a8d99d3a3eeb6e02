"""OpenTelemetry tracing across every hop, configured by the standard `OTEL_*` environment variables.

Off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set (and neither
`OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`): then `configure` sets up the SDK with an OTLP
(HTTP/protobuf) exporter behind a batch span processor, both read the rest of their `OTEL_*` variables
themselves. Off, no SDK is loaded and every hook below returns at its first line, on the module-level
`ENABLED`: the hot path pays one attribute read per batch or per message.

The W3C `traceparent` travels in a Kafka header of every message and in the webhook request. Where the
processes store work for later (the order service's outbox, the relay's queued deliveries), the traceparent
of the span that caused it is stored with it, so a message published later (by another instance, after a
crash) and the webhook request continue the trace of the HTTP call or command that started it.

The hooks, one per hop:
- `consuming(records)`: a CONSUMER span per Kafka record (child of its `traceparent`, or a new trace), around
  a batch; maps each record to the traceparent of its span, for what the batch stores or publishes.
- `record_headers` / `message_headers`: a PRODUCER span per published message, its traceparent in the
  message's headers (aiokafka's list of pairs, FastStream's dict).
- `webhook_request`: a CLIENT span per webhook attempt, its traceparent in the request's headers.
- `instrument_api` and `kafka_middlewares`: the FastAPI instrumentation and FastStream's own telemetry
  middleware, for the API (its requests, and the commands it publishes with FastStream).
"""

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi import FastAPI

TRACEPARENT = "traceparent"
"""The W3C Trace Context header, in Kafka records and in webhook requests."""

ENABLED = False
"""Whether `configure` set up tracing in this process; every hook checks it first."""

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: Any = None
_NOTHING: dict[int, str] = {}
"""What `consuming` yields when tracing is off: no record has a traceparent (never written to)."""


class KafkaRecord(Protocol):
    """What `consuming` reads of an aiokafka `ConsumerRecord`."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


def requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint is set, and the SDK and the traces exporter
    are not switched off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure(service_name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on for this process if the environment asks for it (see `requested`); returns whether it
    is on. `service_name` is the default `service.name`: `OTEL_SERVICE_NAME` (or `service.name` in
    `OTEL_RESOURCE_ATTRIBUTES`) overrides it. Spans are flushed when the process exits."""
    global ENABLED, _tracer, _provider  # noqa: PLW0603 - the process's one switch, set once at start
    if ENABLED or not requested(environ):
        return ENABLED
    # Imported only when on: a process without tracing never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)  # OTEL_TRACES_SAMPLER; shut down (flushed) at exit
    # The exporter reads OTEL_EXPORTER_OTLP_*, the processor OTEL_BSP_* (e.g. its schedule delay).
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("service.tracing")
    ENABLED = True
    return True


def traceparent_of(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The `traceparent` among a Kafka record's headers, if any."""
    for name, value in headers or ():
        if name == TRACEPARENT:
            return value.decode("ascii", "replace")
    return None


def _context_of(traceparent: str | None) -> Any:
    return _PROPAGATOR.extract({TRACEPARENT: traceparent}) if traceparent else None


def _traceparent(span: Span) -> str:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier[TRACEPARENT]


def _ended_with(spans: Sequence[Span], error: BaseException | None) -> None:
    for span in spans:
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()


def consuming(records: Sequence[KafkaRecord]) -> AbstractContextManager[Mapping[int, str]]:
    """A CONSUMER span `<topic> process` for each record of a batch, each the child of the record's own
    `traceparent` (a new trace if it has none), open while the batch is handled; yields `id(record)` →
    the traceparent of its span, to store or publish with what the record caused. A failed batch ends its
    spans with the error (the batch is read again: the next attempt has spans of its own). Off, a context
    that yields an empty mapping (made once: no generator per batch)."""
    return _consuming(records) if ENABLED else _UNTRACED_BATCH


_UNTRACED_BATCH = contextlib.nullcontext(_NOTHING)


@contextlib.contextmanager
def _consuming(records: Sequence[KafkaRecord]) -> Iterator[Mapping[int, str]]:
    spans = [
        _tracer.start_span(
            f"{record.topic} process",
            context=_context_of(traceparent_of(record.headers)),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
            },
        )
        for record in records
    ]
    try:
        yield {id(record): _traceparent(span) for record, span in zip(records, spans, strict=True)}
    except BaseException as error:
        _ended_with(spans, error)
        raise
    _ended_with(spans, None)


def _published(parent: str | None, destination: str) -> str:
    """Start and end a PRODUCER span `<destination> publish`; its traceparent."""
    span = _tracer.start_span(
        f"{destination} publish",
        context=_context_of(parent),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": destination,
        },
    )
    span.end()
    return _traceparent(span)


def record_headers(
    headers: list[tuple[str, bytes]], parent: str | None, destination: str
) -> list[tuple[str, bytes]]:
    """`headers` (aiokafka's form) of a message to `destination` caused by the span `parent`; with tracing
    on, plus the `traceparent` of a PRODUCER span of its own."""
    if not ENABLED:
        return headers
    return [*headers, (TRACEPARENT, _published(parent, destination).encode())]


def message_headers(headers: dict[str, str], parent: str | None, destination: str) -> dict[str, str]:
    """`record_headers` in FastStream's form of headers."""
    if not ENABLED:
        return headers
    return headers | {TRACEPARENT: _published(parent, destination)}


class WebhookSpan:
    """One webhook attempt's CLIENT span, as `webhook_request` yields it: `headers` to send with the request
    (empty with tracing off), and `answered` to record the outcome on the span."""

    __slots__ = ("headers", "span")

    def __init__(self, span: Span | None, headers: dict[str, str]) -> None:
        self.span = span
        self.headers = headers

    def answered(self, status: int | None, error: str | None = None) -> None:
        """The endpoint's status code, or why there was none (a 4xx or 5xx, or no answer, is an error)."""
        if self.span is None:
            return
        if status is not None:
            self.span.set_attribute("http.response.status_code", status)
        if status is None or status >= 400:
            self.span.set_status(Status(StatusCode.ERROR, error or str(status)))


_UNTRACED_REQUEST = contextlib.nullcontext(WebhookSpan(None, {}))


def webhook_request(parent: str | None, endpoint_id: str, url: str) -> AbstractContextManager[WebhookSpan]:
    """A CLIENT span `POST` around one webhook attempt, the child of `parent` (the traceparent queued with
    the event). Its attributes name the endpoint by id and host only: a webhook URL's path and query may
    hold the client's secrets. Off, a context that yields a `WebhookSpan` without headers or span."""
    return _webhook_request(parent, endpoint_id, url) if ENABLED else _UNTRACED_REQUEST


@contextlib.contextmanager
def _webhook_request(parent: str | None, endpoint_id: str, url: str) -> Iterator[WebhookSpan]:
    attributes: dict[str, str] = {"http.request.method": "POST", "orders.webhook.endpoint_id": endpoint_id}
    if host := urlsplit(url).hostname:
        attributes["server.address"] = host
    span = _tracer.start_span(
        "POST", context=_context_of(parent), kind=SpanKind.CLIENT, attributes=attributes
    )
    try:
        yield WebhookSpan(span, {TRACEPARENT: _traceparent(span)})
    except BaseException as error:
        _ended_with([span], error)
        raise
    span.end()


def kafka_middlewares() -> Sequence[Any]:
    """FastStream's OpenTelemetry middleware for a broker that publishes with FastStream one message at a
    time (the API's commands): a PRODUCER span per message, child of the current span, and `traceparent` in
    its headers. None with tracing off."""
    if not ENABLED:
        return ()
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware  # noqa: PLC0415

    return (KafkaTelemetryMiddleware(tracer_provider=_provider),)


def instrument_api(app: "FastAPI") -> None:
    """The FastAPI instrumentation: a SERVER span per request (continuing a caller's `traceparent`), the
    probes and the metrics scrape left out unless `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS` says otherwise."""
    if not ENABLED:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor  # noqa: PLC0415

    excluded = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "healthz,readyz,metrics")
    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=excluded)
