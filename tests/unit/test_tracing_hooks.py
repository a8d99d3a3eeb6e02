"""The tracing hooks in one process, against an in-memory exporter: what each span continues and what it
hands on; off, the hooks hand back what they were given. And the trace context survives storage."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from service import tracing
from service.store.outbox import Destination, OutboxEntry
from service.store.webhook_deliveries import QueuedEvent, _traced_body
from tests.relay.conftest import status_event as status_event_of

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
HEADERS = [("content-type", b"application/json")]


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    headers: list[tuple[str, bytes]]


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on, in this process only for the test, without touching the global tracer provider."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "ENABLED", True)
    yield exporter
    provider.shutdown()


def parts(traceparent: str) -> tuple[str, str]:
    """(trace id, span id) of a traceparent."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def only(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


def test_off_the_hooks_hand_back_what_they_were_given() -> None:
    assert not tracing.ENABLED
    record = Record("orders.commands", 0, 1, [("traceparent", PARENT.encode())])
    with tracing.consuming([record]) as traced:
        assert traced == {}
    assert tracing.record_headers(HEADERS, PARENT, "t") is HEADERS
    json_headers = {"content-type": "application/json"}
    assert tracing.message_headers(json_headers, PARENT, "t") is json_headers
    with tracing.webhook_request(PARENT, "ep-1", "https://hooks.example/x") as request:
        assert request.headers == {}
        request.answered(500)


def test_a_record_s_span_continues_its_traceparent_and_what_it_publishes_continues_that(
    exported: InMemorySpanExporter,
) -> None:
    traced_record = Record("orders.commands", 3, 42, [("traceparent", PARENT.encode())])
    plain_record = Record("orders.commands", 3, 43, [])
    with tracing.consuming([traced_record, plain_record]) as traced:
        headers = tracing.record_headers(HEADERS, traced[id(traced_record)], "orders.status-changed")
    process = [s for s in exported.get_finished_spans() if s.name == "orders.commands process"]
    assert [s.kind for s in process] == [SpanKind.CONSUMER, SpanKind.CONSUMER]
    first, second = process
    assert first.parent is not None and f"{first.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert f"{first.context.trace_id:032x}" == TRACE_ID
    assert second.parent is None and f"{second.context.trace_id:032x}" != TRACE_ID  # a trace of its own
    assert first.attributes is not None and first.attributes["messaging.kafka.offset"] == 42
    publish = only(exported.get_finished_spans(), "orders.status-changed publish")
    assert publish.kind is SpanKind.PRODUCER and publish.parent is not None
    assert publish.parent.span_id == first.context.span_id
    assert headers[:1] == HEADERS and headers[1][0] == "traceparent"
    assert parts(headers[1][1].decode()) == (TRACE_ID, f"{publish.context.span_id:016x}")


def test_a_failed_batch_ends_its_spans_with_the_error(exported: InMemorySpanExporter) -> None:
    record = Record("resources.replies", 0, 7, [])
    with pytest.raises(ConnectionError), tracing.consuming([record]):
        raise ConnectionError("redis away")
    (span,) = exported.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


def test_a_webhook_attempt_is_a_client_span_named_without_the_url_s_secrets(
    exported: InMemorySpanExporter,
) -> None:
    url = "https://hooks.example.com:8443/T00/B00/s3cr3t?token=abc"
    with tracing.webhook_request(PARENT, "ep-1", url) as request:
        request.answered(503, "unavailable")
    (span,) = exported.get_finished_spans()
    assert span.kind is SpanKind.CLIENT and span.status.status_code is StatusCode.ERROR
    assert parts(request.headers["traceparent"]) == (TRACE_ID, f"{span.context.span_id:016x}")
    attributes = dict(span.attributes or {})
    assert attributes["server.address"] == "hooks.example.com"
    assert attributes["http.response.status_code"] == 503
    assert not any("s3cr3t" in str(v) or "abc" in str(v) for v in attributes.values())


def test_an_outbox_entry_keeps_its_traceparent_through_storage() -> None:
    traced = OutboxEntry(Destination.STATUS_CHANGED, "ORD-1", b'{"a": "x y\\nz"}', PARENT)
    plain = OutboxEntry(Destination.RESOURCE_REQUESTS, "ORD-1", b'{"a": 1}')
    assert OutboxEntry.decode(traced.encode()) == traced
    assert OutboxEntry.decode(plain.encode()) == plain
    # commit_transition.lua keeps a status event's history from what follows the key's line: the event.
    assert traced.encode().split(b"\n", 2)[2] == traced.value
    assert plain.encode() == b'request\nORD-1\n{"a": 1}'  # as stored before tracing existed
    dead_letter = OutboxEntry(Destination.DEAD_LETTER, "", b"{}", PARENT)
    assert OutboxEntry.decode(dead_letter.encode()) == dead_letter


def test_a_queued_delivery_keeps_its_traceparent_through_storage() -> None:
    status_event = status_event_of("ORD-1", 1)
    body = status_event.model_dump_json().encode()
    traced = QueuedEvent.of("ep-1", status_event, body, PARENT)
    assert _traced_body(traced.stored_body()) == (PARENT, body)
    plain = QueuedEvent.of("ep-1", status_event, body)
    assert plain.stored_body() == body and _traced_body(body) == (None, body)
