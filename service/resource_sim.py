"""A resource operator simulator: answers `reserve` requests with `confirmed`, `failed` or `waitlisted`.

Used by the demo, the tests and the benchmarks. Its reply ids and booking references derive from the
request ids, so a re-delivered request produces a duplicate reply, as a real operator's retry would.
"""

import asyncio
import hashlib
import logging
import random
from collections.abc import Mapping, Sequence

from aiokafka import ConsumerRecord
from faststream import FastStream
from pydantic import ValidationError

from contracts.limits import MAX_IDENTIFIER_LENGTH
from contracts.resources import (
    ReleaseRequest,
    ReservationConfirmed,
    ReservationFailed,
    ReservationWaitlisted,
    ReserveRequest,
    ResourceReplyMessage,
    ResourceRequestMessage,
    resource_request_adapter,
)
from service import tracing
from service.config import ResourceSimSettings
from service.kafka import JSON_HEADERS, build_app, build_broker, subscribe_batches

log = logging.getLogger(__name__)

CLIENT_ID = "resource-sim"


class ResourceSimulator:
    """Decides each reservation's fate by the settings: fixed sets of failing and waitlisting resources,
    then chance."""

    def __init__(self, settings: ResourceSimSettings) -> None:
        self._settings = settings
        self._failing = _resource_set(settings.sim_fail_resources)
        self.silent = _resource_set(settings.sim_silent_resources)
        self._waitlisting = _resource_set(settings.sim_waitlist_resources)
        self._waitlisting_first = _resource_set(settings.sim_waitlist_then_confirm_resources)
        self._random = random.Random(settings.sim_seed)
        self.releases = 0

    def reply_to(self, request: ReserveRequest) -> ResourceReplyMessage:
        """The operator's answer to one reservation request."""
        reply_id = _reply_id(request.request_id)
        if request.resource_id in self._failing:
            return ReservationFailed(
                reply_id=reply_id,
                order_id=request.order_id,
                reservation_id=request.reservation_id,
                reason_code="SOLD_OUT",
                reason=f"{request.resource_id} has no capacity left on {request.service_date}",
            )
        if request.resource_id in self._waitlisting:
            return ReservationWaitlisted(
                reply_id=reply_id, order_id=request.order_id, reservation_id=request.reservation_id
            )
        if self._random.random() < self._settings.sim_failure_ratio:
            return ReservationFailed(
                reply_id=reply_id,
                order_id=request.order_id,
                reservation_id=request.reservation_id,
                reason_code="RESOURCE_ERROR",
                reason="the resource's system did not accept the reservation",
            )
        return ReservationConfirmed(
            reply_id=reply_id,
            order_id=request.order_id,
            reservation_id=request.reservation_id,
            booking_reference=booking_reference(request.request_id),
        )

    def replies_to(self, request: ReserveRequest) -> list[ResourceReplyMessage]:
        """Every reply to one reservation request, in order: one, or `waitlisted` then `confirmed`."""
        if request.resource_id not in self._waitlisting_first:
            return [self.reply_to(request)]
        waitlisted = ReservationWaitlisted(
            reply_id=_reply_id(f"{request.request_id}/waitlisted"),
            order_id=request.order_id,
            reservation_id=request.reservation_id,
        )
        confirmed = ReservationConfirmed(
            reply_id=_reply_id(request.request_id),
            order_id=request.order_id,
            reservation_id=request.reservation_id,
            booking_reference=booking_reference(request.request_id),
        )
        return [waitlisted, confirmed]


def _reply_id(request_id: str) -> str:
    # A request id of a long order id is longer than an identifier may be: then a digest stands in for it.
    reply_id = f"{request_id}/reply"
    if len(reply_id) <= MAX_IDENTIFIER_LENGTH:
        return reply_id
    return f"reply-{hashlib.blake2b(request_id.encode(), digest_size=16).hexdigest()}"


def booking_reference(request_id: str) -> str:
    """The simulated resource's reference for a reservation: `BK-` and ten hex digits of the request id."""
    return f"BK-{hashlib.blake2b(request_id.encode(), digest_size=5).hexdigest().upper()}"


def _resource_set(csv: str) -> set[str]:
    return {r.strip() for r in csv.split(",") if r.strip()}


def build_resource_sim(settings: ResourceSimSettings) -> FastStream:
    """The simulator as a FastStream app."""
    broker = build_broker(settings, client_id=CLIENT_ID)
    simulator = ResourceSimulator(settings)
    replies = broker.publisher(
        settings.topic_resource_replies, title="resource_replies", schema=ResourceReplyMessage
    )

    async def on_requests(records: Sequence[ConsumerRecord]) -> None:
        with tracing.consuming(records) as traced:  # a span per request while the batch is answered
            await answer_batch(records, traced)

    async def answer_batch(records: Sequence[ConsumerRecord], traced: Mapping[int, str]) -> None:
        answers: list[tuple[ResourceReplyMessage, str | None]] = []
        for record in records:
            try:
                request = resource_request_adapter.validate_json(record.value or b"")
            except ValidationError:
                log.warning("sim.bad_request", extra={"offset": record.offset, "partition": record.partition})
                continue
            if isinstance(request, ReleaseRequest):
                simulator.releases += 1
                log.info("sim.released", extra={"reservation_id": request.reservation_id})
                continue
            if request.resource_id not in simulator.silent:
                answers += [(reply, traced.get(id(record))) for reply in simulator.replies_to(request)]
        if settings.sim_latency_seconds:
            await asyncio.sleep(settings.sim_latency_seconds)
        pending = [
            await replies.publish(
                answer.model_dump_json().encode(),
                key=answer.order_id.encode(),
                headers=tracing.message_headers(JSON_HEADERS, traceparent, settings.topic_resource_replies),
                no_confirm=True,
            )
            for answer, traceparent in answers
        ]
        await asyncio.gather(*pending)

    subscribe_batches(
        broker,
        settings,
        topic=settings.topic_resource_requests,
        group=settings.sim_group,
        title="resource_requests",
        payload=ResourceRequestMessage,
        handler=on_requests,
    )
    return build_app(broker, client_id=CLIENT_ID)
